//! Structural dedupe of rust-hdl's Verilog: one module per distinct body, not per instance.
//!
//! rust-hdl writes one module per instance, named by its path (`top$array$pe$0`,
//! `top$array$pe$1`, ...), so the text grows with DIM². [`dedupe`] is a pure text transformation
//! of that output: modules whose text is identical up to their own name are written once (the
//! first in file order is kept, under its own name) and every instantiation of a dropped one
//! names the kept one instead. Modules are compared children first, so once the leaves have
//! merged their parents compare equal too: one pass reaches the fixpoint (a second pass changes
//! nothing, which the tests check).
//!
//! What it relies on, all of which rust-hdl's `ModuleDefines::defines()` guarantees and
//! [`dedupe`] checks (a [`DedupeError`] otherwise, never a silently different design):
//! - every module starts with a line `module NAME(...` at column 0 and ends with the line
//!   `endmodule // NAME`; between modules there are only blank lines and `//` comments (they go
//!   with the module that follows); text before the first module is a preamble kept as is;
//! - an instantiation is a line whose first token is the name of a module of the file
//!   (`    NAME inst(`); nothing else in a body starts with a module's name, because rust-hdl's
//!   signals are named relative to their module (`ctl$clock`), modules by their full path.

use std::collections::{HashMap, HashSet};

use thiserror::Error;

/// Why a text could not be deduplicated (it is not shaped like rust-hdl's output).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DedupeError {
    /// A `module` line without a name.
    #[error("line {line}: a module declaration without a name")]
    NoName { line: usize },
    /// A module that does not end with `endmodule // NAME`.
    #[error("module {name} does not end with `endmodule // {name}`")]
    Unterminated { name: String },
    /// Text other than blank lines and comments between two modules.
    #[error("line {line}: text outside a module")]
    Stray { line: usize },
    /// Two modules with one name.
    #[error("module {name} is declared twice")]
    Duplicate { name: String },
    /// A NUL character (never in Verilog text).
    #[error("line {line}: a NUL character")]
    Nul { line: usize },
    /// A module that instantiates itself, directly or not.
    #[error("module {name} instantiates itself")]
    Recursive { name: String },
}

/// The statistics of one dedupe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeStats {
    /// Modules in the input.
    pub modules_in: usize,
    /// Modules kept in the output (the distinct ones).
    pub modules_out: usize,
}

/// Is `c` part of a Verilog simple identifier (`$` included, as rust-hdl uses it)?
pub(crate) fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The identifier at the start of `s` (empty if none).
pub(crate) fn leading_ident(s: &str) -> &str {
    let end = s.bytes().position(|c| !ident_char(c)).unwrap_or(s.len());
    &s[..end]
}

/// One module of the input: its name, the blank and comment lines before it (rust-hdl puts a
/// comment before a wrapper module), and its lines from `module` to `endmodule`, each with its
/// line terminator.
pub(crate) struct Module<'a> {
    pub(crate) name: &'a str,
    pub(crate) lead: Vec<&'a str>,
    pub(crate) lines: Vec<&'a str>,
}

/// Cuts `text` into its preamble, its modules and the text after the last one (shared with
/// [`crate::inline_dff`], which relies on the same shape).
pub(crate) fn parse(text: &str) -> Result<(&str, Vec<Module<'_>>, String), DedupeError> {
    let mut preamble_end = text.len();
    let mut modules: Vec<Module> = Vec::new();
    let mut open = false;
    let mut lead: Vec<&str> = Vec::new();
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if open {
            let m = modules.last_mut().expect("an open module");
            m.lines.push(line);
            if line.trim_end().strip_prefix("endmodule // ") == Some(m.name) {
                open = false;
            }
        } else if let Some(rest) = line.strip_prefix("module ") {
            let name = leading_ident(rest.trim_start());
            if name.is_empty() {
                return Err(DedupeError::NoName { line: n + 1 });
            }
            if modules.is_empty() {
                preamble_end = offset;
            }
            modules.push(Module { name, lead: std::mem::take(&mut lead), lines: vec![line] });
            open = true;
        } else if !modules.is_empty() {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with("//") {
                return Err(DedupeError::Stray { line: n + 1 });
            }
            lead.push(line);
        }
        offset += line.len();
    }
    if open {
        let name = modules.last().expect("an open module").name;
        return Err(DedupeError::Unterminated { name: name.to_string() });
    }
    let mut names = HashSet::with_capacity(modules.len());
    for m in &modules {
        if !names.insert(m.name) {
            return Err(DedupeError::Duplicate { name: m.name.to_string() });
        }
    }
    Ok((&text[..preamble_end], modules, lead.concat()))
}

/// Placeholders in canonical texts are framed by NUL, which Verilog text never contains
/// (checked): `\0S\0` for a module's own name, `\0<class>\0` for an instantiated module.
const MARK: char = '\0';

/// The Verilog `text` with each distinct module written once; see the module docs.
pub fn dedupe(text: &str) -> Result<(String, DedupeStats), DedupeError> {
    if let Some(at) = text.find(MARK) {
        return Err(DedupeError::Nul { line: text[..at].matches('\n').count() + 1 });
    }
    let (preamble, modules, trailer) = parse(text)?;
    let index: HashMap<&str, usize> = modules.iter().enumerate().map(|(i, m)| (m.name, i)).collect();

    // class[i]: the class of modules equal to module i up to names, once resolved; a class is
    // kept once, under the name of its first module in file order (`first[class]`), with the
    // canonical text of its first-resolved member (`canon[class]`).
    let mut class: Vec<Option<usize>> = vec![None; modules.len()];
    let mut canon: Vec<String> = Vec::new();
    let mut first: Vec<usize> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Each module's instantiated modules, in order, found once.
    let children: Vec<Vec<usize>> = modules
        .iter()
        .map(|m| {
            m.lines.iter().skip(1).filter_map(|l| index.get(leading_ident(l.trim_start())).copied()).collect()
        })
        .collect();
    // Resolve children first with an explicit stack (hierarchies are shallow, but a hostile
    // input must not overflow the stack); next[i]: how many of i's children are resolved.
    let mut on_stack = vec![false; modules.len()];
    let mut next = vec![0usize; modules.len()];
    for root in 0..modules.len() {
        let mut stack = vec![root];
        while let Some(&i) = stack.last() {
            if class[i].is_some() {
                stack.pop();
                continue;
            }
            on_stack[i] = true;
            while next[i] < children[i].len() && class[children[i][next[i]]].is_some() {
                next[i] += 1;
            }
            if let Some(&c) = children[i].get(next[i]) {
                if on_stack[c] {
                    return Err(DedupeError::Recursive { name: modules[c].name.to_string() });
                }
                stack.push(c);
                continue;
            }
            let text = canonical(&modules[i], &index, &class);
            let k = match seen.get(&text) {
                Some(&k) => k,
                None => {
                    seen.insert(text.clone(), canon.len());
                    canon.push(text);
                    first.push(i);
                    canon.len() - 1
                }
            };
            first[k] = first[k].min(i);
            class[i] = Some(k);
            on_stack[i] = false;
            stack.pop();
        }
    }

    let mut out = String::with_capacity(text.len());
    out.push_str(preamble);
    for (i, m) in modules.iter().enumerate() {
        let k = class[i].expect("every module is resolved");
        if first[k] != i {
            continue;
        }
        // between MARKs: odd pieces are placeholders
        for (n, piece) in canon[k].split(MARK).enumerate() {
            if n % 2 == 0 {
                out.push_str(piece);
            } else if piece == "S" {
                out.push_str(m.name);
            } else {
                let c: usize = piece.parse().expect("a class placeholder");
                out.push_str(modules[first[c]].name);
            }
        }
    }
    out.push_str(&trailer);
    Ok((out, DedupeStats { modules_in: modules.len(), modules_out: first.len() }))
}

/// The text of `m` with its own name as the placeholder `\0S\0` and every instantiated module
/// as its class `\0<class>\0` (all of which are resolved).
fn canonical(m: &Module, index: &HashMap<&str, usize>, class: &[Option<usize>]) -> String {
    let own = format!("{MARK}S{MARK}");
    let mut s: String = m.lead.concat();
    let last = m.lines.len() - 1;
    for (n, line) in m.lines.iter().enumerate() {
        if n == 0 || n == last {
            // `module NAME(...` and `endmodule // NAME`
            s.push_str(&line.replacen(m.name, &own, 1));
        } else {
            let body = line.trim_start();
            let first = leading_ident(body);
            match index.get(first).and_then(|&c| class[c]) {
                Some(k) => {
                    s.push_str(&line[..line.len() - body.len()]);
                    s.push_str(&format!("{MARK}{k}{MARK}"));
                    s.push_str(&body[first.len()..]);
                }
                None => s.push_str(line),
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf flip-flop module of `width` bits named `name`.
    fn dff(name: &str, width: usize) -> String {
        format!(
            "// v-- a comment rust-hdl puts before wrapper modules\n\nmodule {name}(d,q,clock);\n    input wire  [{w}:0] d;\n    output reg  [{w}:0] q;\n    input wire  clock;\n    always @(posedge clock) q <= d;\nendmodule // {name}\n\n",
            w = width - 1
        )
    }

    /// A two-register parent named `name` whose children are `name$a`, `name$b`.
    fn pair(name: &str) -> String {
        format!(
            "module {name}(clock,x,y);\n    input wire  clock;\n    input wire  [7:0] x;\n    output wire  [7:0] y;\n    wire  [7:0] m;\n    {name}$a a(\n        .clock(clock),\n        .d(x),\n        .q(m)\n    );\n    {name}$b b(\n        .clock(clock),\n        .d(m),\n        .q(y)\n    );\nendmodule // {name}\n\n"
        )
    }

    fn modules_of(text: &str) -> Vec<String> {
        text.lines().filter_map(|l| l.strip_prefix("module ")).map(|r| leading_ident(r).to_string()).collect()
    }

    #[test]
    fn leaves_merge_then_their_parents() {
        let mut v = String::from("// preamble\n\n");
        v += "module top(clock,x,y);\n    input wire  clock;\n    input wire  [7:0] x;\n    output wire  [7:0] y;\n    wire  [7:0] m;\n    top$p$0 p$0(\n        .clock(clock),\n        .x(x),\n        .y(m)\n    );\n    top$p$1 p$1(\n        .clock(clock),\n        .x(m),\n        .y(y)\n    );\nendmodule // top\n\n";
        for p in ["top$p$0", "top$p$1"] {
            v += &pair(p);
            v += &dff(&format!("{p}$a"), 8);
            v += &dff(&format!("{p}$b"), 8);
        }
        let (out, stats) = dedupe(&v).unwrap();
        assert_eq!(stats, DedupeStats { modules_in: 7, modules_out: 3 });
        assert_eq!(modules_of(&out), ["top", "top$p$0", "top$p$0$a"]);
        assert!(out.starts_with("// preamble\n\n"));
        // every instantiation names a kept module
        assert_eq!(out.matches("    top$p$0 p$0(").count(), 1);
        assert_eq!(out.matches("    top$p$0 p$1(").count(), 1);
        assert_eq!(out.matches("    top$p$0$a a(").count(), 1);
        assert_eq!(out.matches("    top$p$0$a b(").count(), 1);
        assert!(!out.contains("top$p$1"));
        assert!(out.contains("endmodule // top$p$0$a\n"));
        assert_eq!(out.matches("// v-- a comment").count(), 1, "a dropped module's comment goes with it");
        // the fixpoint: a second pass changes nothing
        let (again, s2) = dedupe(&out).unwrap();
        assert_eq!(again, out);
        assert_eq!(s2, DedupeStats { modules_in: 3, modules_out: 3 });
    }

    #[test]
    fn different_bodies_stay_apart() {
        // same shape, different widths: nothing merges, nothing changes
        let mut v = String::new();
        v += &pair("top");
        v += &dff("top$a", 8);
        v += &dff("top$b", 9);
        let (out, stats) = dedupe(&v).unwrap();
        assert_eq!(out, v);
        assert_eq!(stats.modules_out, 3);
        // parents differ when their children differ, even if their own text is the same
        let mut w = String::from("module top(clock);\n    input wire  clock;\n    top$p$0 p$0(\n        .clock(clock)\n    );\n    top$p$1 p$1(\n        .clock(clock)\n    );\nendmodule // top\n");
        w += "module top$p$0(clock);\n    input wire  clock;\n    top$p$0$r r(\n        .clock(clock)\n    );\nendmodule // top$p$0\n";
        w += "module top$p$0$r(clock);\n    input wire  clock;\n    reg  [3:0] q;\nendmodule // top$p$0$r\n";
        w += "module top$p$1(clock);\n    input wire  clock;\n    top$p$1$r r(\n        .clock(clock)\n    );\nendmodule // top$p$1\n";
        w += "module top$p$1$r(clock);\n    input wire  clock;\n    reg  [4:0] q;\nendmodule // top$p$1$r\n";
        let (out, stats) = dedupe(&w).unwrap();
        assert_eq!(out, w);
        assert_eq!(stats.modules_out, 5);
    }

    #[test]
    fn a_signal_named_like_a_module_prefix_is_not_rewritten() {
        // `top$a_q` starts with the text of module `top$a` but is another identifier; only a
        // line's first token that is exactly a module name is an instantiation
        let mut v = String::from("module top(clock);\n    input wire  clock;\n    wire  top$a_q;\n    top$b b(\n        .clock(clock)\n    );\n    top$a a(\n        .clock(clock)\n    );\nendmodule // top\n");
        v += "module top$a(clock);\n    input wire  clock;\nendmodule // top$a\n";
        v += "module top$b(clock);\n    input wire  clock;\nendmodule // top$b\n";
        let (out, stats) = dedupe(&v).unwrap();
        assert_eq!(stats.modules_out, 2);
        assert!(out.contains("    wire  top$a_q;\n"));
        assert!(out.contains("    top$a b(\n"));
        assert!(out.contains("    top$a a(\n"));
        assert_eq!(modules_of(&out), ["top", "top$a"]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(dedupe("module (a);\nendmodule\n").unwrap_err(), DedupeError::NoName { line: 1 });
        assert_eq!(
            dedupe("module m(a);\nendmodule\n").unwrap_err(),
            DedupeError::Unterminated { name: "m".into() }
        );
        assert_eq!(
            dedupe("module m(a);\nendmodule // m\nwire x;\n").unwrap_err(),
            DedupeError::Stray { line: 3 }
        );
        assert_eq!(
            dedupe("module m(a);\nendmodule // m\nmodule m(a);\nendmodule // m\n").unwrap_err(),
            DedupeError::Duplicate { name: "m".into() }
        );
        let cyc = "module a(c);\n    b x(\n    );\nendmodule // a\nmodule b(c);\n    a y(\n    );\nendmodule // b\n";
        assert!(matches!(dedupe(cyc).unwrap_err(), DedupeError::Recursive { .. }));
        assert_eq!(dedupe("module m(a);\n\0\nendmodule // m\n").unwrap_err(), DedupeError::Nul { line: 2 });
        // no modules at all: the text is kept
        assert_eq!(dedupe("// nothing\n").unwrap().0, "// nothing\n");
    }
}
