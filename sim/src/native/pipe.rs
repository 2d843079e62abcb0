//! A fixed-capacity FIFO of rows in flight between a memory read and the write of their result
//! (the MATMUL read-modify-write pipeline and the ACTIVATE pipeline), each due on a known
//! cycle. Storage is allocated once; pushing and popping a row moves no memory.

/// Where and when a row in flight lands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Landing {
    /// Absolute tick on whose rising edge the row is written.
    pub due: u64,
    /// Destination row address (16-bit, as the controller's registers hold it).
    pub dst: u16,
    /// MATMUL: add to the accumulator row instead of overwriting it.
    pub accumulate: bool,
}

/// FIFO of rows of `dim` values of `T`, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Pipe<T> {
    dim: usize,
    head: usize,
    len: usize,
    meta: Vec<Landing>,
    data: Vec<T>,
}

impl<T: Copy + Default> Pipe<T> {
    /// Room for `cap` rows of `dim` values.
    pub fn new(dim: usize, cap: usize) -> Self {
        Pipe {
            dim,
            head: 0,
            len: 0,
            meta: vec![Landing::default(); cap],
            data: vec![T::default(); cap * dim],
        }
    }

    /// Rows in flight.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The oldest row's landing, if any.
    #[inline]
    pub fn front(&self) -> Option<Landing> {
        (self.len > 0).then(|| self.meta[self.head])
    }

    /// Appends a row landing at `at` and returns its storage to fill.
    ///
    /// # Panics
    /// If the FIFO is full (the model sized it for the deepest pipeline: a bug).
    #[inline]
    pub fn push(&mut self, at: Landing) -> &mut [T] {
        let cap = self.meta.len();
        assert!(self.len < cap, "pipeline FIFO overflow ({cap} rows): model bug");
        let slot = (self.head + self.len) % cap;
        self.len += 1;
        self.meta[slot] = at;
        &mut self.data[slot * self.dim..(slot + 1) * self.dim]
    }

    /// Removes the oldest row and returns it.
    #[inline]
    pub fn pop(&mut self) -> (Landing, &[T]) {
        assert!(self.len > 0, "pop from an empty pipeline FIFO: model bug");
        let slot = self.head;
        self.head = (self.head + 1) % self.meta.len();
        self.len -= 1;
        (self.meta[slot], &self.data[slot * self.dim..(slot + 1) * self.dim])
    }

    /// Drops every row (a reset clears the delay lines that carry them).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_out_in_order_with_their_data_across_the_wrap() {
        let mut p: Pipe<i32> = Pipe::new(2, 3);
        for round in 0..5i32 {
            for i in 0..3 {
                let v = round * 10 + i;
                p.push(Landing { due: v as u64, dst: v as u16, accumulate: i % 2 == 0 })
                    .copy_from_slice(&[v, -v]);
            }
            assert_eq!(p.len(), 3);
            for i in 0..3 {
                let v = round * 10 + i;
                assert_eq!(p.front().unwrap().due, v as u64);
                let (m, row) = p.pop();
                assert_eq!((m.dst, m.accumulate, row), (v as u16, i % 2 == 0, &[v, -v][..]));
            }
            assert_eq!(p.front(), None);
        }
        p.push(Landing::default());
        p.clear();
        assert_eq!(p.len(), 0);
    }

    #[test]
    #[should_panic(expected = "pipeline FIFO overflow (1 rows): model bug")]
    fn overflow_is_a_loud_bug() {
        let mut p: Pipe<i8> = Pipe::new(1, 1);
        p.push(Landing::default());
        p.push(Landing::default());
    }
}
