//! `trtc run PLAN --image DIR.. --batch N`: many images in batches through the pipelined
//! runner, one line each in order; a batch with an image that does not decode is reported
//! with its images while the others are still classified (exit code 1); a batch over the
//! plan's limit is a clear error.

mod common;
use common::*;

/// EfficientNet-Lite0 compiled to a plan of batches up to `max_batch`, in `dir`.
fn plan(dir: &std::path::Path, max_batch: usize) -> String {
    let p = dir.join("e.trtc").display().to_string();
    let o = trtc(&[
        "compile",
        &efficientnet().display().to_string(),
        "-o",
        &p,
        "--max-batch-size",
        &max_batch.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

/// (file name, class index) of each line `path  class  probability  label`.
fn classes(out: &str) -> Vec<(String, usize)> {
    out.lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next().unwrap();
            let name = std::path::Path::new(path).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_directory_of_images_is_classified_in_batches_in_order() {
    let dir = temp_dir("run-images");
    let p = plan(&dir, 2);
    let o = trtc(&["run", &p, "--image", "data/images", "--batch", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = classes(&stdout(&o));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "flower.jpg",
            "grace_hopper.jpg"
        ],
        "every image once, in name order (the last batch filled up with a blank image)"
    );
    // The same classes as one image at a time (README: espresso, tiger cat, daisy).
    assert_eq!(got[2].1, 967);
    assert_eq!(got[1].1, 282);
    assert_eq!(got[3].1, 985);
    for (name, class) in &got {
        let one = trtc(&[
            "run",
            &p,
            "--image",
            &format!("data/images/{name}"),
            "--top",
            "1",
        ]);
        assert!(one.status.success(), "{}", stderr(&one));
        assert!(
            stdout(&one).contains(&format!(" {class} ")),
            "{name}: {}",
            stdout(&one)
        );
    }
}

#[test]
fn an_image_that_does_not_decode_fails_its_batch_only() {
    let dir = temp_dir("run-images-broken");
    let p = plan(&dir, 2);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for f in ["astronaut.png", "chelsea.png", "coffee.png"] {
        std::fs::copy(format!("data/images/{f}"), images.join(f)).unwrap();
    }
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let o = trtc(&[
        "run",
        &p,
        "--image",
        &images.display().to_string(),
        "--batch",
        "2",
    ]);
    assert_clean_failure(&o, "2 of 4 images could not be classified");
    let err = stderr(&o);
    assert!(
        err.contains("astronaut.png") && err.contains("broken.png") && err.contains("batch 0"),
        "{err}"
    );
    let got = classes(&stdout(&o));
    assert_eq!(
        got,
        vec![("chelsea.png".into(), 282), ("coffee.png".into(), 967)],
        "the second batch still ran"
    );
}

#[test]
fn a_batch_over_the_plans_limit_is_refused() {
    let dir = temp_dir("run-images-limit");
    let p = plan(&dir, 2);
    let o = trtc(&["run", &p, "--image", "data/images", "--batch", "3"]);
    assert_clean_failure(&o, "batch 3, over --max-batch-size 2");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = trtc(&["run", &p, "--image", "data/images", "--batch", "0"]);
    assert_clean_failure(&o, "--batch must be at least 1");
    // A path among several that is not there: named before anything runs.
    let o = trtc(&[
        "run",
        &p,
        "--image",
        "data/images/coffee.png",
        "data/images/nope.png",
    ]);
    assert_clean_failure(&o, "--image data/images/nope.png");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}
