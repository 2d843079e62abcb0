//! READ_ACT / READ_ACC read-back (`hdl::controller::Readback`): the next row read while the
//! current one is sent, one word per cycle. The row itself is copied into the row buffer at
//! its load (`mod.rs`); the RTL's memory holds it in `read_data` from the read to the load,
//! and nothing writes that row in between (see the RTL part's docs), so reading the memory
//! at the load gives the same row.

/// The read-back's registers (names as in `hdl::controller::readback`); zero at power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Readback {
    /// The next row to read.
    pub addr: u16,
    /// Rows not yet read.
    pub to_read: u16,
    /// Rows not yet sent.
    pub left: u16,
    /// The memory's `read_data` holds a row not yet in the row buffer ...
    pub pref: bool,
    /// ... this one (the last row read; the RTL keeps the data, not the address).
    pub rd_addr: u16,
    /// The row buffer holds a row; its word `idx` is offered.
    pub loaded: bool,
    pub idx: u16,
}

/// What the read-back does on one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edge {
    /// A row read from the memory (the RTL's `ren`).
    pub read: bool,
    /// The row buffer is loaded with this row (the RTL's `load`).
    pub load: Option<u16>,
}

impl Readback {
    /// The word offered is the read-back's last (`last_word`: a row's last word index).
    #[inline]
    pub fn last(&self, last_word: u16) -> bool {
        self.idx == last_word && self.left == 1
    }

    /// The registers after this edge, `sent`: the offered word leaves now.
    #[inline]
    pub fn next(&self, sent: bool, last_word: u16) -> (Readback, Edge) {
        let q = self;
        let row_end = q.loaded && sent && q.idx == last_word;
        let consume = q.pref && (!q.loaded || row_end);
        let read = q.to_read != 0 && (!q.pref || consume);
        let mut d = *q;
        if read {
            d.addr = q.addr.wrapping_add(1);
            d.to_read = q.to_read - 1;
            d.rd_addr = q.addr;
        }
        d.pref = read || (q.pref && !consume);
        d.loaded = consume || (q.loaded && !row_end);
        if q.loaded && sent {
            if row_end {
                d.idx = 0;
                d.left = q.left.wrapping_sub(1);
            } else {
                d.idx = q.idx.wrapping_add(1);
            }
        }
        (d, Edge { read, load: consume.then_some(q.rd_addr) })
    }

    /// A read-back of `rows` rows from `addr` starts on this edge.
    #[inline]
    pub fn start(&mut self, addr: u16, rows: u16) {
        (self.addr, self.to_read, self.left, self.idx) = (addr, rows, rows, 0);
        (self.pref, self.loaded) = (false, false);
    }

    /// The reset values.
    pub fn reset(&mut self) {
        (self.to_read, self.pref, self.loaded) = (0, false, false);
    }
}
