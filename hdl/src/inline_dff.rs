//! rust-hdl's flip-flops written as registers of their parent module, not as sub-module
//! instances.
//!
//! rust-hdl's `DFF<T>` is a block like any other, so its Verilog is a module of its own
//! (`d`, `q`, `clock`; an `initial` value and `always @(posedge clock) q <= d;`), and every
//! register of a design is an instance of one: three stub signals in the parent
//! (`reg X$d; wire X$q; reg X$clock;`), a five-line instantiation, and `X$clock = clock;` in the
//! parent's `always @(*)` block. [`inline_dffs`] is a pure text transformation of that output
//! which writes each such instance as a register of the parent instead:
//!
//! ```text
//!     wire  [31:0] a0$q;                     reg  [31:0] a0$q;
//!     reg  a0$clock;                         ...
//!     ...                                    // Registers (rust-hdl's DFF instances, inlined)
//!     protobrain_core$ctl$a0 a0(     ──►     initial begin
//!         .d(a0$d),                              a0$q = 32'h0;
//!         .q(a0$q),                          end
//!         .clock(a0$clock)                   always @(posedge clock) begin
//!     );                                         a0$q <= a0$d;
//!     ... always @(*) begin                  end
//!         a0$clock = clock;
//! ```
//!
//! The registers of one module share one `initial` block and one `always` block per clock, in
//! the place of the first instance; the `X$clock` stub and its assignment go; a flip-flop module
//! that was instantiated and no longer is goes too (one that never was, a top module, stays).
//! The register keeps the stub's name `X$q`, which is also a wire of rust-hdl's text (the
//! flip-flop's output in the parent), so a formal check pairs the two by name.
//!
//! A flip-flop module is recognised by its exact shape, not by its name: ports `(d,q,clock)`,
//! declared `input wire T d; output reg T q; input wire clock;` (one type `T`: `signed` or not,
//! one bit or `[N:0]`), then only the body above with a sized literal as the initial value
//! (rust-hdl's enum registers also declare their enum's `localparam`s, unused in that body, and
//! dropped with it). Any other module is left alone.
//!
//! What it relies on, all of which rust-hdl's `ModuleDefines::defines()` guarantees for a
//! `DFF` and [`inline_dffs`] checks (an [`InlineDffError`] otherwise, never a silently
//! different design):
//! - the text is cut into modules as [`crate::dedupe`] cuts it (the same parser, the same
//!   errors);
//! - an instance of a flip-flop module is the five lines `NAME X(`, `.d(X$d),`, `.q(X$q),`,
//!   `.clock(X$clock)`, `);`, outside any `generate` block;
//! - the parent declares each stub once, `reg T X$d;`, `wire T X$q;` and `reg X$clock;`, `T` the
//!   flip-flop's type;
//! - nothing in the parent drives `X$q`: no line, `assign` or `always @(*)` link included,
//!   starts with it (rust-hdl writes every statement from its left-hand side), and no other
//!   instance's port is connected to it;
//! - `X$clock` is named three times only: its declaration, the connection, and one assignment
//!   `X$clock = C;` directly inside an `always @(*) begin ... end` block (not under an `if` or
//!   a `case`), where `C` is a 1-bit input port of the parent: so the flip-flop's clock is that
//!   port, and `always @(posedge C)` is the same register.
//!
//! It runs before [`crate::dedupe::dedupe`] in [`crate::emit::top_verilog`], for
//! [`crate::emit::Form::Compact`] only. Either order is correct (a deduped flip-flop module is
//! still a flip-flop module, and what the pass writes for a parent depends only on the parent's
//! text and its flip-flops' bodies), and on this design both give the same bytes (compared at
//! DIM 8). Before is the choice because dedupe then compares the final text, so its guarantee
//! (one pass is the fixpoint) is about the text `emit` writes. In the other order, two parents
//! could stay apart that differ only in the unused enum `localparam`s of their flip-flop
//! modules, the one part of a flip-flop module that the inlining drops (unlikely: rust-hdl
//! names those parameters by their enum, and the parents declare them too). The price is checking
//! every flip-flop module of rust-hdl's text instead of one per distinct body: at DIM 8, 130 of
//! its 160 modules, in about 2 ms (release build).

use std::collections::{HashMap, HashSet};

use thiserror::Error;

use crate::dedupe::{ident_char, leading_ident, parse, DedupeError, Module};

/// Why a text's flip-flops could not be inlined (it is not shaped like rust-hdl's output).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InlineDffError {
    /// The text is not cut into modules as rust-hdl writes them.
    #[error("{0}")]
    Text(#[from] DedupeError),
    /// An instance of a flip-flop module not connected to its own three stubs.
    #[error(
        "module {module}: instance {instance} of flip-flop module {dff} is not connected as \
         `.d({instance}$d), .q({instance}$q), .clock({instance}$clock)`"
    )]
    Connection { module: String, instance: String, dff: String },
    /// An instance of a flip-flop module inside a `generate` block.
    #[error("module {module}: instance {instance} of a flip-flop module inside a generate block")]
    Generate { module: String, instance: String },
    /// A stub not declared exactly once with the flip-flop's type.
    #[error("module {module}: `{signal}` is not declared once, as `{expected}`")]
    Declaration { module: String, signal: String, expected: String },
    /// A flip-flop's output assigned in its parent as well, or connected to another instance's
    /// port (whose direction this pass does not know).
    #[error(
        "module {module}: `{signal}`, a flip-flop's output, is assigned or connected to a port in its parent"
    )]
    Driven { module: String, signal: String },
    /// A flip-flop's clock not a plain copy of a clock port (see the module docs).
    #[error("module {module}: clock `{signal}`: {why}")]
    Clock { module: String, signal: String, why: &'static str },
}

/// The statistics of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineStats {
    /// Flip-flop instances written as registers.
    pub registers: usize,
    /// Flip-flop modules dropped (instantiated in the input, no longer).
    pub modules_dropped: usize,
}

/// A flip-flop module: the type of `d` and `q` (`signed [7:0]`, `[4:0]`, or empty for one
/// unsigned bit) and the initial value of `q`.
struct Dff<'a> {
    ty: String,
    init: &'a str,
}

/// The declaration on a trimmed line: (kind, type, name), the kind one of rust-hdl's
/// (`input wire`, `output reg`, `reg`, `wire`, ...), the type its tokens between kind and name
/// joined by one space (`signed [7:0]`, `[3:0]`, `signed`, or empty). None for other lines.
fn declaration(line: &str) -> Option<(&'static str, String, &str)> {
    let mut tokens: Vec<&str> = line.split_whitespace().collect();
    let name = tokens.pop()?.strip_suffix(';')?;
    if name.is_empty() || leading_ident(name) != name {
        return None;
    }
    let kind = match tokens.as_slice() {
        ["input", "wire", ..] => "input wire",
        ["output", "reg", ..] => "output reg",
        ["output", "wire", ..] => "output wire",
        ["inout", "wire", ..] => "inout wire",
        ["reg", ..] => "reg",
        ["wire", ..] => "wire",
        _ => return None,
    };
    let ty = &tokens[kind.split(' ').count()..];
    let range = |t: &str| {
        t.strip_prefix('[').and_then(|t| t.strip_suffix(":0]")).is_some_and(|n| n.parse::<u32>().is_ok())
    };
    let ok = match ty {
        [] | ["signed"] => true,
        [r] | ["signed", r] => range(r),
        _ => false,
    };
    ok.then(|| (kind, ty.join(" "), name))
}

/// Is `s` a sized Verilog literal (`32'h0`, `8'sh7f`, `1'b1`)?
fn sized_literal(s: &str) -> bool {
    let Some((size, value)) = s.split_once('\'') else { return false };
    let value = value.strip_prefix('s').unwrap_or(value);
    let mut v = value.chars();
    !size.is_empty()
        && size.bytes().all(|c| c.is_ascii_digit())
        && matches!(v.next(), Some('h' | 'd' | 'b' | 'o'))
        && v.as_str().chars().next().is_some()
        && v.all(|c| c.is_ascii_hexdigit() || c == '_')
}

/// Is the trimmed `line` one of an enum's `localparam NAME = N;`?
fn enum_param(line: &str) -> bool {
    matches!(line.split_whitespace().collect::<Vec<_>>().as_slice(),
        ["localparam", name, "=", value]
            if leading_ident(name) == *name
                && value.strip_suffix(';').is_some_and(|v| v.parse::<u64>().is_ok()))
}

/// `m` as a flip-flop module (see the module docs), or None.
fn dff_shape<'a>(m: &Module<'a>) -> Option<Dff<'a>> {
    let mut it = m.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with("//"));
    if it.next()? != format!("module {}(d,q,clock);", m.name) {
        return None;
    }
    let (kind, ty, name) = declaration(it.next()?)?;
    if (kind, name) != ("input wire", "d") {
        return None;
    }
    if declaration(it.next()?)? != ("output reg", ty.clone(), "q")
        || declaration(it.next()?)? != ("input wire", String::new(), "clock")
    {
        return None;
    }
    let mut line = it.next()?;
    while enum_param(line) {
        line = it.next()?;
    }
    if line != "initial begin" {
        return None;
    }
    let init = it.next()?.strip_prefix("q = ")?.strip_suffix(';')?;
    if !sized_literal(init) {
        return None;
    }
    let end = format!("endmodule // {}", m.name);
    let rest = ["end", "always @(posedge clock) begin", "q <= d;", "end", end.as_str()];
    (it.by_ref().take(rest.len()).eq(rest) && it.next().is_none()).then_some(Dff { ty, init })
}

/// The identifiers of `code` (maximal runs of identifier characters; a literal's digits too).
fn idents(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !c.is_ascii() || !ident_char(c as u8)).filter(|t| !t.is_empty())
}

/// `line` without its `//` comment, trimmed.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("").trim()
}

/// One flip-flop instance of a parent: its name, the line of `NAME X(`, its flip-flop module
/// and the clock port it is assigned from.
struct Instance<'a, 'b> {
    name: &'a str,
    at: usize,
    dff: &'b Dff<'a>,
    clock: &'a str,
}

/// What a parent's text says about its lines: where each identifier occurs (a line once per
/// occurrence), whether a line is inside a `generate` block, and how deep a line sits in an
/// `always @(*) begin ... end` block (1: directly inside it; None: outside any).
struct Scan<'a> {
    occurs: HashMap<&'a str, Vec<usize>>,
    in_generate: Vec<bool>,
    comb_depth: Vec<Option<usize>>,
}

fn scan<'a>(lines: &[&'a str]) -> Scan<'a> {
    let mut occurs: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut in_generate = Vec::with_capacity(lines.len());
    let mut comb_depth = Vec::with_capacity(lines.len());
    let (mut generate, mut comb) = (0usize, None::<usize>);
    for (i, line) in lines.iter().enumerate() {
        let c = code(line);
        in_generate.push(generate > 0);
        comb_depth.push(comb);
        if comb.is_none() && c == "always @(*) begin" {
            comb = Some(1);
            continue;
        }
        for t in idents(c) {
            occurs.entry(t).or_default().push(i);
            match t {
                "generate" => generate += 1,
                "endgenerate" => generate = generate.saturating_sub(1),
                "begin" | "case" | "casez" | "casex" | "fork" => comb = comb.map(|d| d + 1),
                "end" | "endcase" | "join" => comb = comb.and_then(|d| d.checked_sub(1).filter(|&d| d > 0)),
                _ => {}
            }
        }
    }
    Scan { occurs, in_generate, comb_depth }
}

/// The Verilog `text` with every flip-flop instance written as a register of its parent; see
/// the module docs.
pub fn inline_dffs(text: &str) -> Result<(String, InlineStats), InlineDffError> {
    let (preamble, modules, trailer) = parse(text)?;
    let dffs: HashMap<&str, Dff> = modules.iter().filter_map(|m| Some((m.name, dff_shape(m)?))).collect();
    let module_names: HashSet<&str> = modules.iter().map(|m| m.name).collect();

    let mut out = String::with_capacity(text.len());
    out.push_str(preamble);
    let mut bodies = Vec::with_capacity(modules.len());
    let mut instantiated: HashSet<&str> = Default::default();
    let mut registers = 0;
    for m in &modules {
        if dffs.contains_key(m.name) {
            bodies.push(None);
            continue;
        }
        let (body, n) = inline_module(m, &dffs, &module_names, &mut instantiated)?;
        registers += n;
        bodies.push(body);
    }
    let mut dropped = 0;
    for (m, body) in modules.iter().zip(bodies) {
        if dffs.contains_key(m.name) && instantiated.contains(m.name) {
            dropped += 1;
            continue;
        }
        out.extend(m.lead.iter().copied());
        match body {
            Some(b) => out.push_str(&b),
            None => out.extend(m.lines.iter().copied()),
        }
    }
    out.push_str(&trailer);
    Ok((out, InlineStats { registers, modules_dropped: dropped }))
}

/// The text of parent `m` with its flip-flop instances as registers (None if it has none) and
/// how many it had; `instantiated` collects the flip-flop modules it instantiated.
fn inline_module<'a>(
    m: &Module<'a>,
    dffs: &HashMap<&'a str, Dff<'a>>,
    module_names: &HashSet<&str>,
    instantiated: &mut HashSet<&'a str>,
) -> Result<(Option<String>, usize), InlineDffError> {
    let lines = &m.lines;
    let last = lines.len() - 1;
    let module = || m.name.to_string();
    // instantiations: a line whose first token is a module's name (as in crate::dedupe)
    let mut sub_modules = 0;
    let mut found: Vec<(&str, usize, &str)> = Vec::new();
    for (i, line) in lines.iter().enumerate().take(last).skip(1) {
        let kind = leading_ident(line.trim_start());
        if !module_names.contains(kind) {
            continue;
        }
        sub_modules += 1;
        if dffs.contains_key(kind) {
            let rest = line.trim_start()[kind.len()..].trim_start();
            let name = leading_ident(rest);
            let connection =
                |k: usize, want: String| lines.get(i + k).map(|l| l.trim()) == Some(want.as_str());
            let shaped = !name.is_empty()
                && line.trim() == format!("{kind} {name}(")
                && connection(1, format!(".d({name}$d),"))
                && connection(2, format!(".q({name}$q),"))
                && connection(3, format!(".clock({name}$clock)"))
                && connection(4, ");".to_string());
            if !shaped {
                return Err(InlineDffError::Connection {
                    module: module(),
                    instance: if name.is_empty() { "?".into() } else { name.to_string() },
                    dff: kind.to_string(),
                });
            }
            found.push((kind, i, name));
        }
    }
    if found.is_empty() {
        return Ok((None, 0));
    }

    let s = scan(lines);
    let occurrences = |signal: &str| s.occurs.get(signal).map(Vec::as_slice).unwrap_or(&[]);
    // the one declaration of `signal`, which must read `kind ty signal;`; its line
    let declared_once = |signal: &str, kind: &'static str, ty: &str| -> Result<usize, InlineDffError> {
        let decls: Vec<usize> =
            occurrences(signal).iter().copied().filter(|&l| declaration(lines[l].trim()).is_some()).collect();
        let expected = (kind, ty.to_string(), signal);
        match decls.as_slice() {
            [l] if declaration(lines[*l].trim()) == Some(expected) => Ok(*l),
            _ => Err(InlineDffError::Declaration {
                module: module(),
                signal: signal.to_string(),
                expected: [kind, ty, &format!("{signal};")]
                    .iter()
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
        }
    };

    let mut drop = vec![false; lines.len()];
    let mut retype = vec![false; lines.len()];
    let mut instances: Vec<Instance> = Vec::with_capacity(found.len());
    for &(kind, at, name) in &found {
        let dff = &dffs[kind];
        if s.in_generate[at] {
            return Err(InlineDffError::Generate { module: module(), instance: name.to_string() });
        }
        let (d, q, clk) = (format!("{name}$d"), format!("{name}$q"), format!("{name}$clock"));
        declared_once(&d, "reg", &dff.ty)?;
        let q_decl = declared_once(&q, "wire", &dff.ty)?;
        let clk_decl = declared_once(&clk, "reg", "")?;
        for &l in occurrences(&q) {
            let c = code(lines[l]);
            let lhs = c.strip_prefix("assign ").or_else(|| c.strip_prefix("always @(*) ")).unwrap_or(c);
            let driven = leading_ident(lhs.trim_start()) == q || c.starts_with('.');
            if l != q_decl && l != at + 2 && driven {
                return Err(InlineDffError::Driven { module: module(), signal: q });
            }
        }
        let clock_error = |why| InlineDffError::Clock { module: module(), signal: clk.clone(), why };
        let assigned: Vec<usize> =
            occurrences(&clk).iter().copied().filter(|&l| l != clk_decl && l != at + 3).collect();
        let &[a] = assigned.as_slice() else {
            return Err(clock_error("not named only in its declaration, the connection and one assignment"));
        };
        let port = code(lines[a])
            .strip_prefix(clk.as_str())
            .and_then(|r| r.strip_prefix(" = "))
            .and_then(|r| r.strip_suffix(';'))
            .filter(|p| !p.is_empty() && leading_ident(p) == *p)
            .ok_or_else(|| clock_error("not assigned as `X$clock = PORT;`"))?;
        if s.comb_depth[a] != Some(1) {
            return Err(clock_error("not assigned directly inside an `always @(*)` block"));
        }
        let is_port = occurrences(port)
            .iter()
            .any(|&l| declaration(lines[l].trim()) == Some(("input wire", String::new(), port)));
        if !is_port {
            return Err(clock_error("not assigned from a 1-bit input port"));
        }
        drop[clk_decl] = true;
        drop[a] = true;
        drop[at..at + 5].fill(true);
        retype[q_decl] = true;
        instantiated.insert(kind);
        instances.push(Instance { name, at, dff, clock: port });
    }

    // the registers, in place of the first instance
    let first = instances[0].at;
    let indent = &lines[first][..lines[first].len() - lines[first].trim_start().len()];
    let mut regs =
        format!("{indent}// Registers (rust-hdl's DFF instances, inlined)\n{indent}initial begin\n");
    for r in &instances {
        regs.push_str(&format!("{indent}    {}$q = {};\n", r.name, r.dff.init));
    }
    regs.push_str(&format!("{indent}end\n"));
    let mut clocks: Vec<&str> = Vec::new();
    for r in &instances {
        if !clocks.contains(&r.clock) {
            clocks.push(r.clock);
        }
    }
    for c in clocks {
        regs.push_str(&format!("{indent}always @(posedge {c}) begin\n"));
        for r in instances.iter().filter(|r| r.clock == c) {
            regs.push_str(&format!("{indent}    {0}$q <= {0}$d;\n", r.name));
        }
        regs.push_str(&format!("{indent}end\n"));
    }

    let only_dffs = sub_modules == instances.len();
    let mut body = String::with_capacity(lines.iter().map(|l| l.len()).sum());
    for (i, line) in lines.iter().enumerate() {
        if i == first {
            body.push_str(&regs);
        } else if drop[i] || (only_dffs && line.trim() == "// Sub module instances") {
            continue;
        } else if retype[i] {
            let t = line.trim_start();
            let rest = t.strip_prefix("wire").expect("a wire declaration");
            body.push_str(&line[..line.len() - t.len()]);
            body.push_str("reg");
            body.push_str(rest);
        } else {
            body.push_str(line);
        }
    }
    Ok((Some(body), instances.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A declaration as rust-hdl writes it (`kind signed [w-1:0] name;`, two spaces when
    /// unsigned, no range for one bit).
    fn decl(kind: &str, signed: bool, width: usize, name: &str) -> String {
        let s = if signed { "signed" } else { "" };
        match width {
            1 => format!("{kind} {s} {name};"),
            w => format!("{kind} {s} [{}:0] {name};", w - 1),
        }
    }

    /// rust-hdl's text of a `DFF` module named `name` (`enums`: its enum's localparams).
    fn dff(name: &str, signed: bool, width: usize, enums: &[&str]) -> String {
        let mut e = String::new();
        if !enums.is_empty() {
            e.push_str("    // Enums\n");
            for (i, n) in enums.iter().enumerate() {
                e.push_str(&format!("    localparam {n} = {i};\n"));
            }
            e.push_str("    \n");
        }
        format!(
            "\n\nmodule {name}(d,q,clock);\n    \n    // Module arguments\n    {}\n    {}\n    input wire  clock;\n    \n{e}    // Update code (custom)\n    initial begin\n       q = {}'h0;\n    end\n    \n    always @(posedge clock) begin\n       q <= d;\n    end\n          \nendmodule // {name}\n",
            decl("input wire", signed, width, "d"),
            decl("output reg", signed, width, "q"),
            if enums.is_empty() { width } else { 64 },
        )
    }

    /// A parent in rust-hdl's words: a signed byte register `a` (reset by `rst`), a 1-bit `f`
    /// and an enum register `s`, and a child `top$c` that is not a flip-flop.
    const PARENT: &str = "module top(clock,rst,x,y);
    
    // Module arguments
    input wire  clock;
    input wire  rst;
    input wire signed [7:0] x;
    output reg signed [7:0] y;
    
    // Enums
    localparam S$A = 0;
    localparam S$B = 1;
    
    // Stub signals
    reg signed [7:0] a$d;
    wire signed [7:0] a$q;
    reg  a$clock;
    reg  f$d;
    wire  f$q;
    reg  f$clock;
    reg  [1:0] s$d;
    wire  [1:0] s$q;
    reg  s$clock;
    reg  c$clock;
    
    // Sub module instances
    top$a a(
        .d(a$d),
        .q(a$q),
        .clock(a$clock)
    );
    top$f f(
        .d(f$d),
        .q(f$q),
        .clock(f$clock)
    );
    top$s s(
        .d(s$d),
        .q(s$q),
        .clock(s$clock)
    );
    top$c c(
        .clock(c$clock)
    );
    
    // Update code
    always @(*) begin
        a$clock = clock;
        f$clock = clock;
        s$clock = clock;
        c$clock = clock;
        a$d = a$q;
        f$d = f$q;
        s$d = s$q;
        if (rst) begin
            a$d = 8'h0;
        end
        else begin
            a$d = x;
        end
        f$d = ~f$q;
        if (s$q == S$A) begin
            s$d = S$B;
        end
        y = a$q;
    end
    
endmodule // top
";

    /// `PARENT` with its flip-flops as registers: what [`inline_dffs`] must write.
    const PARENT_INLINED: &str = "module top(clock,rst,x,y);
    
    // Module arguments
    input wire  clock;
    input wire  rst;
    input wire signed [7:0] x;
    output reg signed [7:0] y;
    
    // Enums
    localparam S$A = 0;
    localparam S$B = 1;
    
    // Stub signals
    reg signed [7:0] a$d;
    reg signed [7:0] a$q;
    reg  f$d;
    reg  f$q;
    reg  [1:0] s$d;
    reg  [1:0] s$q;
    reg  c$clock;
    
    // Sub module instances
    // Registers (rust-hdl's DFF instances, inlined)
    initial begin
        a$q = 8'h0;
        f$q = 1'h0;
        s$q = 64'h0;
    end
    always @(posedge clock) begin
        a$q <= a$d;
        f$q <= f$d;
        s$q <= s$d;
    end
    top$c c(
        .clock(c$clock)
    );
    
    // Update code
    always @(*) begin
        c$clock = clock;
        a$d = a$q;
        f$d = f$q;
        s$d = s$q;
        if (rst) begin
            a$d = 8'h0;
        end
        else begin
            a$d = x;
        end
        f$d = ~f$q;
        if (s$q == S$A) begin
            s$d = S$B;
        end
        y = a$q;
    end
    
endmodule // top
";

    const CHILD: &str =
        "\n\nmodule top$c(clock);\n    \n    // Module arguments\n    input wire  clock;\n    \nendmodule // top$c\n";

    /// `PARENT`, its flip-flop modules and its other child.
    fn design() -> String {
        let mut v = String::from("// preamble\n\n");
        v += PARENT;
        v += &dff("top$a", true, 8, &[]);
        v += CHILD;
        v += &dff("top$f", false, 1, &[]);
        v += &dff("top$s", false, 2, &["S$A", "S$B"]);
        v
    }

    fn modules_of(text: &str) -> Vec<String> {
        text.lines().filter_map(|l| l.strip_prefix("module ")).map(|r| leading_ident(r).to_string()).collect()
    }

    #[test]
    fn flip_flops_become_registers_of_their_parent() {
        let (out, stats) = inline_dffs(&design()).unwrap();
        assert_eq!(stats, InlineStats { registers: 3, modules_dropped: 3 });
        assert_eq!(out, format!("// preamble\n\n{PARENT_INLINED}{CHILD}"));
        // the fixpoint: nothing left to inline
        let (again, s2) = inline_dffs(&out).unwrap();
        assert_eq!(again, out);
        assert_eq!(s2, InlineStats { registers: 0, modules_dropped: 0 });
    }

    #[test]
    fn a_module_of_flip_flops_only_loses_its_instances_header_and_each_clock_has_its_block() {
        // two clock ports; no other child, so "// Sub module instances" goes
        let v = format!(
            "module top(clk_a,clk_b);\n    input wire  clk_a;\n    input wire  clk_b;\n    reg  a$d;\n    wire  a$q;\n    reg  a$clock;\n    reg  b$d;\n    wire  b$q;\n    reg  b$clock;\n    \n    // Sub module instances\n    top$a a(\n        .d(a$d),\n        .q(a$q),\n        .clock(a$clock)\n    );\n    top$a b(\n        .d(b$d),\n        .q(b$q),\n        .clock(b$clock)\n    );\n    always @(*) begin\n        a$clock = clk_a;\n        b$clock = clk_b;\n        a$d = b$q;\n        b$d = a$q;\n    end\nendmodule // top\n{}",
            dff("top$a", false, 1, &[])
        );
        let (out, stats) = inline_dffs(&v).unwrap();
        assert_eq!(stats, InlineStats { registers: 2, modules_dropped: 1 });
        assert_eq!(
            out,
            "module top(clk_a,clk_b);\n    input wire  clk_a;\n    input wire  clk_b;\n    reg  a$d;\n    reg  a$q;\n    reg  b$d;\n    reg  b$q;\n    \n    // Registers (rust-hdl's DFF instances, inlined)\n    initial begin\n        a$q = 1'h0;\n        b$q = 1'h0;\n    end\n    always @(posedge clk_a) begin\n        a$q <= a$d;\n    end\n    always @(posedge clk_b) begin\n        b$q <= b$d;\n    end\n    always @(*) begin\n        a$d = b$q;\n        b$d = a$q;\n    end\nendmodule // top\n"
        );
    }

    #[test]
    fn a_flip_flop_module_never_instantiated_stays() {
        // a top module that is a flip-flop (generate_verilog of a DFF) is not dropped
        let v = dff("top", true, 32, &[]);
        assert_eq!(inline_dffs(&v).unwrap(), (v, InlineStats { registers: 0, modules_dropped: 0 }));
    }

    #[test]
    fn only_the_exact_shape_is_a_flip_flop() {
        // each variant of top$a is some other module: its instance and the module stay as they are
        let good = dff("top$a", true, 8, &[]);
        let variants = [
            good.replace("q <= d;", "q <= ~d;"),
            good.replace("q <= d;", "q <= d;\n       q <= 8'h1;"),
            good.replace("q = 8'h0;", "q = zero;"),
            good.replace("q = 8'h0;", "q = 8'h0 + 1;"),
            good.replace("posedge clock", "negedge clock"),
            good.replace("output reg signed [7:0] q;", "output reg signed [8:0] q;"),
            good.replace("output reg signed [7:0] q;", "output reg  [7:0] q;"),
            good.replace("(d,q,clock)", "(q,d,clock)"),
            good.replace("    input wire  clock;\n", "    input wire  clock;\n    reg  [7:0] r;\n"),
            good.replace("    // Update code (custom)\n", "    localparam W = 8;\n    wire x;\n"),
        ];
        for (n, dff) in variants.iter().enumerate() {
            assert_ne!(dff, &good, "variant {n} changes the module");
            let v = format!("{PARENT}{dff}{}{}{CHILD}", dff_f(), dff_s());
            let (out, stats) = inline_dffs(&v).unwrap_or_else(|e| panic!("variant {n}: {e}"));
            assert_eq!(stats, InlineStats { registers: 2, modules_dropped: 2 }, "variant {n}");
            assert!(out.contains("    top$a a(\n        .d(a$d),\n"), "variant {n}");
            assert!(out.contains("        a$clock = clock;\n"), "variant {n}");
            assert!(out.contains("    wire signed [7:0] a$q;\n"), "variant {n}");
            assert!(out.contains(dff.as_str()), "variant {n}");
            assert_eq!(modules_of(&out), ["top", "top$a", "top$c"], "variant {n}");
        }
    }

    fn dff_f() -> String {
        dff("top$f", false, 1, &[])
    }

    fn dff_s() -> String {
        dff("top$s", false, 2, &["S$A", "S$B"])
    }

    /// `design()` with `from` replaced by `to` in the parent (which must change).
    fn broken(from: &str, to: &str) -> Result<(String, InlineStats), InlineDffError> {
        assert!(PARENT.contains(from), "{from}");
        inline_dffs(&design().replacen(from, to, 1))
    }

    fn clock_error(from: &str, to: &str) -> &'static str {
        match broken(from, to) {
            Err(InlineDffError::Clock { module, signal, why }) => {
                assert_eq!((module.as_str(), signal.as_str()), ("top", "a$clock"));
                why
            }
            other => panic!("{from} -> {to}: {other:?}"),
        }
    }

    #[test]
    fn a_parent_not_shaped_as_rust_hdl_writes_it_is_an_error() {
        let connection = |instance: &str| InlineDffError::Connection {
            module: "top".into(),
            instance: instance.into(),
            dff: "top$a".into(),
        };
        assert_eq!(broken(".d(a$d),", ".d(x),").unwrap_err(), connection("a"));
        assert_eq!(broken(".clock(a$clock)\n", ".clock(clock)\n").unwrap_err(), connection("a"));
        assert_eq!(broken("    top$a a(\n", "    top$a a (\n").unwrap_err(), connection("a"));
        assert_eq!(
            broken(".d(a$d),\n        .q(a$q),\n", ".q(a$q),\n        .d(a$d),\n").unwrap_err(),
            connection("a")
        );
        assert_eq!(
            broken("    top$a a(\n", "    generate\n    top$a a(\n").unwrap_err(),
            InlineDffError::Generate { module: "top".into(), instance: "a".into() }
        );
        let declaration = |signal: &str, expected: &str| InlineDffError::Declaration {
            module: "top".into(),
            signal: signal.into(),
            expected: expected.into(),
        };
        let q = "    wire signed [7:0] a$q;\n";
        assert_eq!(broken(q, "").unwrap_err(), declaration("a$q", "wire signed [7:0] a$q;"));
        assert_eq!(
            broken(q, "    wire signed [6:0] a$q;\n").unwrap_err(),
            declaration("a$q", "wire signed [7:0] a$q;")
        );
        assert_eq!(broken(q, &q.repeat(2)).unwrap_err(), declaration("a$q", "wire signed [7:0] a$q;"));
        assert_eq!(
            broken("    reg signed [7:0] a$d;\n", "    reg  [7:0] a$d;\n").unwrap_err(),
            declaration("a$d", "reg signed [7:0] a$d;")
        );
        assert_eq!(
            broken("    reg  f$clock;\n", "    reg  [1:0] f$clock;\n").unwrap_err(),
            declaration("f$clock", "reg f$clock;")
        );
        let driven = InlineDffError::Driven { module: "top".into(), signal: "a$q".into() };
        assert_eq!(broken("        y = a$q;\n", "        a$q = x;\n").unwrap_err(), driven);
        assert_eq!(broken("        y = a$q;\n", "        a$q[0] = 1'b0;\n").unwrap_err(), driven);
        assert_eq!(broken("    // Update code\n", "    assign a$q = x;\n").unwrap_err(), driven);
        assert_eq!(broken("    // Update code\n", "    always @(*) a$q = x;\n").unwrap_err(), driven);
        assert_eq!(broken(".clock(c$clock)\n", ".clock(c$clock),\n        .o(a$q)\n").unwrap_err(), driven);
        // not a driver: a read that starts no line, a comparison
        assert!(broken("        y = a$q;\n", "        y = (a$q <= x) ? a$q : x;\n").is_ok());

        let once = "not named only in its declaration, the connection and one assignment";
        assert_eq!(clock_error("        a$clock = clock;\n", ""), once);
        assert_eq!(
            clock_error("        a$clock = clock;\n", "        a$clock = clock;\n        a$clock = clock;\n"),
            once
        );
        assert_eq!(clock_error("        y = a$q;\n", "        y = a$clock;\n"), once);
        assert_eq!(
            clock_error("        a$clock = clock;\n", "        a$clock = clock & rst;\n"),
            "not assigned as `X$clock = PORT;`"
        );
        assert_eq!(
            clock_error("        a$clock = clock;\n", "        a$clock <= clock;\n"),
            "not assigned as `X$clock = PORT;`"
        );
        let inside = "not assigned directly inside an `always @(*)` block";
        assert_eq!(
            clock_error(
                "        a$clock = clock;\n",
                "        if (rst) begin\n        a$clock = clock;\n        end\n"
            ),
            inside
        );
        assert_eq!(
            clock_error("        a$clock = clock;\n", "        case (rst)\n        1'b0: begin\n        a$clock = clock;\n        end\n        endcase\n"),
            inside
        );
        assert_eq!(
            clock_error(
                "        a$clock = clock;\n",
                "        case (rst)\n        1'b0: a$clock = clock;\n        endcase\n"
            ),
            "not assigned as `X$clock = PORT;`"
        );
        assert_eq!(
            clock_error(
                "        a$clock = clock;\n",
                "    end\n    always @(posedge clock) begin\n        a$clock = clock;\n"
            ),
            inside
        );
        let port = "not assigned from a 1-bit input port";
        assert_eq!(clock_error("        a$clock = clock;\n", "        a$clock = y;\n"), port);
        assert_eq!(clock_error("        a$clock = clock;\n", "        a$clock = x;\n"), port);
        assert_eq!(clock_error("        a$clock = clock;\n", "        a$clock = f$q;\n"), port);
        // a module that is not cut as rust-hdl cuts them
        assert_eq!(
            inline_dffs("module m(a);\nendmodule\n").unwrap_err(),
            InlineDffError::Text(DedupeError::Unterminated { name: "m".into() })
        );
    }

    /// rust-hdl's own text of a block with registers of every shape this design has (signed,
    /// one bit, an enum, wide; in the top module and, per instance, in a delay line's module),
    /// inlined: Icarus runs it cycle for cycle as rust-hdl's simulation runs the block, from the
    /// initial values (no reset until cycle 5) on. An x on an output (a lost initial value) is
    /// an error of the replay.
    mod rust_hdl_text {
        use rust_hdl::prelude::*;

        use crate::generate::with_per_instance_text;
        use crate::primitives::{signed_from_i128, signed_to_i128, DelayLine};
        use crate::replay::{replay, simulate, Port};

        use super::super::{inline_dffs, InlineStats};

        #[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
        enum Phase {
            Idle,
            Run,
            Done,
        }

        #[derive(LogicBlock)]
        struct Regs {
            clock: Signal<In, Clock>,
            rst: Signal<In, Bit>,
            x: Signal<In, Signed<8>>,
            sum: Signal<Out, Signed<8>>,
            odd: Signal<Out, Bit>,
            done: Signal<Out, Bit>,
            count: Signal<Out, Bits<40>>,
            late: Signal<Out, Signed<8>>,
            acc: DFF<Signed<8>>,
            parity: DFF<Bit>,
            phase: DFF<Phase>,
            wide: DFF<Bits<40>>,
            line: DelayLine<Signed<8>>,
            zero: Constant<Signed<8>>,
            one: Constant<Bits<40>>,
        }

        impl Logic for Regs {
            #[hdl_gen]
            fn update(&mut self) {
                dff_setup!(self, clock, acc, parity, phase, wide);
                self.line.clock.next = self.clock.val();
                self.line.rst.next = self.rst.val();
                self.line.din.next = self.x.val();
                self.acc.d.next = self.acc.q.val() + self.x.val();
                self.parity.d.next = !self.parity.q.val();
                self.wide.d.next = self.wide.q.val() + self.one.val();
                match self.phase.q.val() {
                    Phase::Idle => self.phase.d.next = Phase::Run,
                    Phase::Run => self.phase.d.next = Phase::Done,
                    Phase::Done => self.phase.d.next = Phase::Done,
                }
                if self.rst.val() {
                    self.acc.d.next = self.zero.val();
                    self.phase.d.next = Phase::Idle;
                }
                self.sum.next = self.acc.q.val();
                self.odd.next = self.parity.q.val();
                self.done.next = self.phase.q.val() == Phase::Done;
                self.count.next = self.wide.q.val();
                self.late.next = self.line.dout.val();
            }
        }

        fn regs() -> Regs {
            Regs {
                clock: Default::default(),
                rst: Default::default(),
                x: Default::default(),
                sum: Default::default(),
                odd: Default::default(),
                done: Default::default(),
                count: Default::default(),
                late: Default::default(),
                acc: Default::default(),
                parity: Default::default(),
                phase: Default::default(),
                wide: Default::default(),
                line: DelayLine::new(2),
                zero: Constant::new(0.into()),
                one: Constant::new(1.into()),
            }
        }

        #[test]
        fn inlined_registers_run_as_rust_hdl_simulates_them() {
            let mut uut = regs();
            uut.connect_all();
            let raw = with_per_instance_text(|| generate_verilog(&uut));
            let (inlined, stats) = inline_dffs(&raw).unwrap();
            // four registers in the top (a signed byte, a bit, the enum, 40 bits), two stages in
            // the delay line's module; rust-hdl's text has a module per instance, all dropped
            assert_eq!(stats, InlineStats { registers: 6, modules_dropped: 6 });
            assert!(!inlined.contains("q <= d;") && raw.contains("q <= d;"));

            let xs: [i128; 12] = [5, -7, 127, -128, 1, 0, 3, -1, 100, 100, -50, 2];
            let stimulus: Vec<Vec<u128>> =
                xs.iter().enumerate().map(|(c, &x)| vec![u128::from(c == 5), (x as u128) & 0xff]).collect();
            let inputs = [Port::new("rst", 1), Port::new("x", 8)];
            let outputs = [
                Port::new("sum", 8),
                Port::new("odd", 1),
                Port::new("done", 1),
                Port::new("count", 40),
                Port::new("late", 8),
            ];
            let rust = simulate(
                &mut regs(),
                |u| &mut u.clock,
                &stimulus,
                |u, row| {
                    u.rst.next = row[0] != 0;
                    u.x.next = signed_from_i128(crate::primitives::sign_extend(row[1], 8));
                },
                |u| {
                    vec![
                        (signed_to_i128(u.sum.val()) as u128) & 0xff,
                        u128::from(u.odd.val()),
                        u128::from(u.done.val()),
                        u.count.val().to_u128(),
                        (signed_to_i128(u.late.val()) as u128) & 0xff,
                    ]
                },
            )
            .unwrap();
            // spot checks of the model itself: initial values, then counting and the reset
            assert_eq!(rust[0], vec![0, 0, 0, 0, 0]);
            assert_eq!(rust[3][2], 1, "Idle, Run, Done");
            assert_eq!(rust[4][3], 4);
            assert_eq!(rust[6][0], 0, "acc reset at cycle 5");
            let icarus = |v: &str| replay(v, "top", "clock", &inputs, &outputs, &stimulus).unwrap();
            assert_eq!(icarus(&raw), rust, "rust-hdl's text");
            assert_eq!(icarus(&inlined), rust, "the inlined text");
        }
    }
}
