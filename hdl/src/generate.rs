//! Blocks written as Verilog generate loops: what the systolic array ([`crate::array`]), the
//! output columns ([`crate::column`]) and the row buffer ([`crate::rowbuf`]) share.
//!
//! rust-hdl writes one module per *instance*, named by its path, and unrolls every loop of
//! `#[hdl_gen]` into the module body, so a block with DIM (or DIM²) copies of a sub-block costs
//! text, and rust-hdl's time, in proportion. The blocks here implement rust-hdl's `Block` by hand
//! ([`generate_loop_block!`]: what `#[derive(LogicBlock)]` writes, plus one switch):
//!
//! - **simulation** (`update_all`, `has_changed`, `connect_all`) runs every sub-block as the
//!   derive would, so the rust-hdl model and every test of it are unchanged;
//! - **emission** (`accept`, the visitor that rust-hdl's checks and `ModuleDefines` use) sees
//!   the block as a leaf, its ports only, and its `hdl()` is a `Verilog::Wrapper` whose body is
//!   a generate loop over one module (rust-hdl's own text of one sub-block, [`module_text`], or
//!   a few lines of hand-written Verilog).
//!
//! [`with_per_instance_text`] switches the visitors back to rust-hdl's per-instance form (the
//! `#[hdl_gen]` body and one module per sub-block): the reference the generate loops are
//! checked against (Icarus in the tests, Yosys in `scripts/emit_equiv.sh`), and the text the
//! board tops keep.

use rust_hdl::prelude::*;

thread_local! {
    /// Set while [`with_per_instance_text`] runs.
    static PER_INSTANCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every generate-loop block (array, columns, row buffer) written by rust-hdl's
/// visitors, on this thread, in rust-hdl's per-instance form: one module per sub-block and the
/// `#[hdl_gen]` body unrolled, the text from before the generate loops. The two forms are the
/// same design (Icarus and Yosys checks in the tests and `scripts/emit_equiv.sh`).
///
/// rust-hdl gives its visitors no options, so the switch is a thread-local flag, restored when
/// `f` returns or panics.
pub fn with_per_instance_text<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PER_INSTANCE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PER_INSTANCE.with(|p| p.replace(true)));
    f()
}

/// Is [`with_per_instance_text`] running on this thread?
pub fn per_instance() -> bool {
    PER_INSTANCE.with(|p| p.get())
}

/// rust-hdl's text of `block` as module `name` (with its sub-modules, named `name$field`).
pub fn module_text<B: Block>(block: &mut B, name: &str) -> String {
    block.connect_all();
    let mut defines = ModuleDefines::default();
    block.accept(name, &mut defines);
    defines.defines()
}

/// The `n` ports `port$0 .. port$(n-1)` (rust-hdl's names for a `Vec` of signals) as one
/// vector, element `i` in the `i`-th lowest field: `{port$(n-1), ..., port$0}`.
pub fn concat(port: &str, n: usize) -> String {
    let v: Vec<String> = (0..n).rev().map(|i| format!("{port}${i}")).collect();
    format!("{{{}}}", v.join(", "))
}

/// `assign {port$(n-1), ..., port$0} = row[W*n-1:0];`: the low `n` fields of width `W` of a
/// vector back to rust-hdl's ports, element `i` from bits `[W*i +: W]` (one assignment, the
/// inverse of [`concat`]).
pub fn split(port: &str, row: &str, width: usize, n: usize) -> String {
    format!("assign {} = {row}[{}:0];\n", concat(port, n), width * n - 1)
}

/// `impl Logic` and `impl Block` for a generate-loop block (see the module docs); a generic
/// type is written `impl[T: Synth] Name<T>`.
///
/// `ports` are the fields visited in both forms (the block's ports), `inner` the fields visited
/// only in the per-instance form (sub-blocks, locals, constants), each in declaration order
/// (the order `#[derive(LogicBlock)]` would use). The type must have the inherent `update`,
/// `connect` and `hdl` that `#[hdl_gen]` writes (the per-instance form) and an inherent
/// `generate_loop_verilog(&self) -> Verilog`.
macro_rules! generate_loop_block {
    ($ty:ty; $($rest:tt)*) => {
        $crate::generate::generate_loop_block!(impl[] $ty; $($rest)*);
    };
    (impl[$($g:tt)*] $ty:ty; ports: $($p:ident),* ; inner: $($i:ident),* $(,)?) => {
        impl<$($g)*> Logic for $ty {
            fn update(&mut self) {
                <$ty>::update(self)
            }
            fn connect(&mut self) {
                <$ty>::connect(self)
            }
            fn hdl(&self) -> Verilog {
                if $crate::generate::per_instance() {
                    <$ty>::hdl(self)
                } else {
                    self.generate_loop_verilog()
                }
            }
        }

        impl<$($g)*> Block for $ty {
            fn connect_all(&mut self) {
                Logic::connect(self);
                $(self.$p.connect_all();)*
                $(self.$i.connect_all();)*
            }

            fn update_all(&mut self) {
                Logic::update(self);
                $(self.$p.update_all();)*
                $(self.$i.update_all();)*
            }

            fn has_changed(&self) -> bool {
                false $(|| self.$p.has_changed())* $(|| self.$i.has_changed())*
            }

            fn accept(&self, name: &str, probe: &mut dyn Probe) {
                probe.visit_start_scope(name, self);
                $(self.$p.accept(stringify!($p), probe);)*
                if $crate::generate::per_instance() {
                    $(self.$i.accept(stringify!($i), probe);)*
                }
                probe.visit_end_scope(name, self);
            }
        }
    };
}
pub(crate) use generate_loop_block;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_and_split_name_rust_hdl_ports() {
        assert_eq!(concat("w", 3), "{w$2, w$1, w$0}");
        assert_eq!(split("y", "y_row", 8, 2), "assign {y$1, y$0} = y_row[15:0];\n");
    }

    #[test]
    fn the_switch_is_restored_after_a_panic() {
        assert!(!per_instance());
        assert!(with_per_instance_text(per_instance));
        let r = std::panic::catch_unwind(|| with_per_instance_text(|| panic!("inside")));
        assert!(r.is_err());
        assert!(!per_instance());
    }
}
