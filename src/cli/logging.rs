//! What the CLI tells the user on stderr: `tracing` events from every crate (warnings by
//! default with `info` progress notes; `-v` adds debug, `-vv` trace; `-q` errors only),
//! and a progress bar for long work (tactic timing), drawn only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::filter::LevelFilter;
use trtc::engine::progress::{self, ProgressSink, ProgressTask};

/// Install the stderr logger and, unless quiet, the progress bar sink.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(verbose > 0)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if !quiet {
        progress::set_sink(Box::new(Bars));
    }
}

/// indicatif bars on stderr (hidden when stderr is not a terminal).
struct Bars;

impl ProgressSink for Bars {
    fn start(&self, what: &str, total: u64) -> Box<dyn ProgressTask> {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_string());
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl ProgressTask for Bar {
    fn advance(&self, units: u64) {
        self.0.inc(units);
    }
    fn message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
