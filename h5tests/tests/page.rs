//! The web page in a real browser (headless Chromium through Selenium): open the sample
//! scan, show a frame, run a map, compare the drawn map with the API's PNG; the screenshot
//! is kept as `target/<profile>/test-artifacts/page.png`.

use roibin_h5tests::*;

#[test]
fn the_page_runs_a_map_in_chromium() {
    let (_dir, root) = scan_root("page");
    let s = start_server(&root, &["--no-cache"]);
    let artifacts = profile_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("page.png");
    let out = ok(python("page.py", &[&s.base, shot.to_str().unwrap()]));
    assert!(stdout(&out).contains("drawn equal to the API's PNG"));
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
}
