"""The web page of `roibin serve` in headless Chromium (Debian's chromium and chromedriver,
Selenium): open the sample scan, show a frame, run an STXM map, wait for it, and check the map
drawn on the page pixel for pixel against the API's PNG of the URL the page shows.

usage: page.py BASE_URL SCREENSHOT.png
"""
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, shot = sys.argv[1], sys.argv[2]
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--window-size=1300,900", "--user-data-dir=" + tempfile.mkdtemp()):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(30)
try:
    wait = WebDriverWait(driver, 30)
    driver.get(base + "/")
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#files a.folder"))).click()
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#files a[data-path='sub/scan.h5']"))).click()
    wait.until(lambda d: d.find_element(By.ID, "dataset").get_attribute("value") == "/entry/data/data")

    driver.find_element(By.ID, "frame").clear()
    driver.find_element(By.ID, "frame").send_keys("3")
    driver.find_element(By.ID, "show").click()
    wait.until(lambda d: "frame done" in d.find_element(By.ID, "status").text)
    assert driver.execute_script("return document.getElementById('view').naturalWidth") == 64

    for k, v in (("frame", "0"), ("horz", "7"), ("vert", "6"), ("signal", "comh")):
        e = driver.find_element(By.ID, k)
        e.clear()
        e.send_keys(v)
    driver.find_element(By.ID, "stxm").click()
    wait.until(lambda d: "stxm map done" in d.find_element(By.ID, "status").text)
    url = driver.find_element(By.ID, "url").get_attribute("value")
    assert "/stxm/sub/scan.h5/0?" in url and "signal=comh" in url and "horz=7" in url, url

    # The map ran as a job whose progress the page followed: all 6 lines done.
    job = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/jobs/0').then(r => r.json()).then(done).catch(e => done(String(e)));")
    assert job["state"] == "done" and job["scans"][0]["lines_done"] == 6, job

    # The drawn map against the API's PNG of the URL shown, pixel for pixel.
    same = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const img = document.getElementById('map');
        const pixels = (src, w, h) => {
          const c = document.createElement('canvas'); c.width = w; c.height = h;
          const g = c.getContext('2d'); g.drawImage(src, 0, 0);
          return g.getImageData(0, 0, w, h).data;
        };
        const drawn = pixels(img, img.naturalWidth, img.naturalHeight);
        fetch(document.getElementById('url').value).then(r => r.blob()).then(createImageBitmap).then(b => {
          const api = pixels(b, b.width, b.height);
          let equal = api.length === drawn.length && api.length > 0;
          for (let i = 0; equal && i < api.length; i++) equal = api[i] === drawn[i];
          done([equal, img.naturalWidth, img.naturalHeight, api.length]);
        }).catch(e => done([false, String(e)]));
    """)
    assert same[0] and same[1:3] == [7, 6], same
    driver.save_screenshot(shot)
    print("page: scan opened, frame shown, STXM map run as a job (6/6 lines), drawn equal to the API's PNG; screenshot", shot)
finally:
    driver.quit()
