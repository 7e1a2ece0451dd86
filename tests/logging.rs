//! What `trtc` says on stderr: notes by default, nothing but errors with `-q`, more with
//! `-v`; errors always, with exit code 1.

mod common;

use common::*;

fn effnet_plan(dir: &std::path::Path) -> std::path::PathBuf {
    let plan = dir.join("effnet.trtc");
    let o = trtc(&[
        "compile",
        efficientnet().to_str().unwrap(),
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    plan
}

#[test]
fn quiet_silences_notes_and_verbose_adds_detail() {
    let dir = temp_dir("logging");
    let plan = effnet_plan(&dir);
    let coffee = image("coffee.png");
    let run = |flags: &[&str]| {
        let mut args = flags.to_vec();
        args.extend([
            "run",
            plan.to_str().unwrap(),
            "--image",
            coffee.to_str().unwrap(),
        ]);
        let o = trtc(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("espresso"), "{}", stdout(&o));
        stderr(&o)
    };
    // Without a GPU the plan's GPU segments run through tract: said once by default.
    let default = run(&[]);
    let quiet = run(&["-q"]);
    assert!(quiet.is_empty(), "-q printed: {quiet}");
    if trtc::gpu().unavailable().is_some() {
        assert!(
            default.contains("run on the CPU through tract"),
            "{default}"
        );
    }
    let verbose = run(&["-v"]);
    assert!(
        verbose.len() >= default.len(),
        "-v says less than the default"
    );
    // Errors still show under -q, with exit code 1.
    let o = trtc(&["-q", "run", dir.join("missing.trtc").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error:"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
