//! Progress of long work (an engine timing its tactics, a benchmark's runs). Library code
//! only reports it; whoever listens draws it: the `trtc` binary installs a sink that shows
//! a bar on a terminal. Without a sink, reporting costs nothing.

use std::sync::OnceLock;

/// Where progress goes.
pub trait ProgressSink: Send + Sync {
    /// A task of `total` units called `what` began.
    fn start(&self, what: &str, total: u64) -> Box<dyn ProgressTask>;
}

/// One task in progress; finished when dropped.
pub trait ProgressTask: Send {
    fn advance(&self, units: u64);
    /// What the task is at now (a layer's name, say).
    fn message(&self, _msg: &str) {}
}

static SINK: OnceLock<Box<dyn ProgressSink>> = OnceLock::new();

/// Install the process's sink (the first call wins; later ones return false).
pub fn set_sink(sink: Box<dyn ProgressSink>) -> bool {
    SINK.set(sink).is_ok()
}

/// A task in progress, reported to the sink if there is one.
pub struct Progress(Option<Box<dyn ProgressTask>>);

impl Progress {
    pub fn advance(&self, units: u64) {
        if let Some(t) = &self.0 {
            t.advance(units);
        }
    }
    pub fn message(&self, msg: &str) {
        if let Some(t) = &self.0 {
            t.message(msg);
        }
    }
}

/// Begin a task of `total` units.
pub fn start(what: &str, total: u64) -> Progress {
    Progress(SINK.get().map(|s| s.start(what, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_sink_progress_is_silent() {
        // No sink is installed in this test binary: reporting must be a no-op.
        let p = start("nothing", 3);
        p.advance(1);
        p.message("layer");
        assert!(p.0.is_none());
    }
}
