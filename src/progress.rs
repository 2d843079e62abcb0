//! A progress bar for long parallel work (sweeps, topologies): drawn on stderr only when it is
//! a terminal, only if the work is still running after a delay (short runs print nothing), and
//! cleared when the work ends.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Run `work`, which reports how many of its `total` steps are done through the callback it is
/// given, under a bar drawn with `template` (indicatif's syntax) once `delay` has passed;
/// `quiet` never draws it.
pub fn with_bar<T>(
    total: usize,
    template: &str,
    delay: Duration,
    quiet: bool,
    work: impl FnOnce(&(dyn Fn(usize) + Sync)) -> T,
) -> T {
    let bar = &ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
    bar.set_style(ProgressStyle::with_template(template).expect("the template is valid"));
    let show = !quiet && std::io::stderr().is_terminal();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|s| {
        s.spawn(move || {
            if show && done_rx.recv_timeout(delay).is_err() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(200));
            }
        });
        let r = work(&|done| bar.set_position(done as u64));
        let _ = done_tx.send(());
        r
    });
    bar.finish_and_clear();
    result
}
