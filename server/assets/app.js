// The page of `roibin serve`: every picture is a URL of the API, shown so it can be copied.
"use strict";
const $ = (id) => document.getElementById(id);
let cwd = "";

function token() {
  const t = new URLSearchParams(location.search).get("token");
  return t ? "token=" + encodeURIComponent(t) : "";
}

async function getJson(url) {
  const r = await fetch(url + (token() ? (url.includes("?") ? "&" : "?") + token() : ""));
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function browse(path) {
  cwd = path;
  $("cwd").textContent = "/" + path;
  const list = await getJson("/files/?path=" + encodeURIComponent(path));
  const box = $("files");
  box.innerHTML = "";
  if (path) {
    const up = document.createElement("a");
    up.textContent = "..";
    up.onclick = () => browse(path.split("/").slice(0, -1).join("/"));
    box.appendChild(up);
  }
  for (const e of list.entries) {
    const a = document.createElement("a");
    const full = path ? path + "/" + e.name : e.name;
    a.textContent = e.kind === "folder" ? e.name + "/" : e.name;
    a.dataset.path = full;
    a.className = e.kind;
    a.onclick = () => (e.kind === "folder" ? browse(full) : openFile(full));
    box.appendChild(a);
  }
}

async function openFile(path) {
  $("file").value = path;
  const sel = $("dataset");
  sel.innerHTML = "";
  try {
    const list = await getJson("/datasets/?path=" + encodeURIComponent(path));
    for (const d of list.datasets) {
      const o = document.createElement("option");
      o.value = d.name;
      o.textContent = (d.name || "(frames)") + " " + JSON.stringify(d.shape);
      sel.appendChild(o);
    }
    status("opened " + path);
  } catch (e) {
    status("error: " + e.message);
  }
}

function params(extra) {
  const p = new URLSearchParams();
  const ds = $("dataset").value;
  if (ds) p.set("dataset", ds);
  for (const k of ["palette", "cmin", "cmax", "binning", "roi"]) {
    if ($(k).value) p.set(k, $(k).value);
  }
  if ($("log").checked) p.set("log", "1");
  for (const [k, v] of Object.entries(extra || {})) if (v !== "" && v != null) p.set(k, v);
  if (token()) p.set("token", new URLSearchParams(location.search).get("token"));
  return p.toString();
}

function filePath() {
  return $("file").value.split("/").map(encodeURIComponent).join("/");
}

function status(s) {
  $("status").textContent = " " + s;
}

function load(img, url, what) {
  $("url").value = location.origin + url;
  status(what + "…");
  const t0 = performance.now();
  img.onload = () => status(what + " done in " + Math.round(performance.now() - t0) + " ms");
  img.onerror = async () => {
    const r = await fetch(url);
    let msg = r.statusText;
    try { msg = (await r.json()).error; } catch (_) { /* not JSON */ }
    status("error: " + msg);
  };
  img.src = url;
}

$("show").onclick = () => load($("view"), "/show/" + filePath() + "/" + $("frame").value + "?" + params(), "frame");
$("multi").onclick = () =>
  load($("view"), "/multi/" + filePath() + "/" + $("frame").value + "?" +
       params({ horz: $("horz").value, vert: $("vert").value }), "multi");
// A map runs as a job: its progress (lines done) shows while it runs, then the map loads
// from the result cache at its own URL.
$("stxm").onclick = async () => {
  const algo = $("algo").value;
  const extra = { algo, signal: $("signal").value, horz: $("horz").value, vert: $("vert").value };
  if (["polarroi", "radial", "gridroi"].includes(algo)) extra[algo] = $("extra").value;
  const url = "/stxm/" + filePath() + "/" + $("frame").value + "?" + params(extra);
  $("url").value = location.origin + url;
  try {
    const job = await getJson(url + "&job=1");
    for (;;) {
      const s = await getJson(job.status);
      const scan = s.scans[0];
      if (scan.error) throw new Error(scan.error);
      status("stxm map: " + scan.lines_done + "/" + (scan.lines || "?") + " lines");
      if (s.state === "done") break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) {
    status("error: " + e.message);
    return;
  }
  load($("map"), url, "stxm map");
};
$("copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText($("url").value);

// Drag a rectangle on the frame to set the ROI (in frame pixels).
(function roiDrag() {
  const img = $("view"), box = $("roibox");
  let start = null;
  const pos = (e) => {
    const r = img.getBoundingClientRect();
    const sx = img.naturalWidth / r.width, sy = img.naturalHeight / r.height;
    return [Math.round((e.clientX - r.left) * sx), Math.round((e.clientY - r.top) * sy), e.clientX - r.left, e.clientY - r.top];
  };
  img.addEventListener("mousedown", (e) => { start = pos(e); e.preventDefault(); });
  img.addEventListener("mousemove", (e) => {
    if (!start) return;
    const p = pos(e);
    Object.assign(box.style, { display: "block", left: Math.min(start[2], p[2]) + "px", top: Math.min(start[3], p[3]) + "px",
      width: Math.abs(p[2] - start[2]) + "px", height: Math.abs(p[3] - start[3]) + "px" });
  });
  img.addEventListener("mouseup", (e) => {
    if (!start) return;
    const p = pos(e);
    const x = Math.min(start[0], p[0]), y = Math.min(start[1], p[1]);
    const w = Math.abs(p[0] - start[0]), h = Math.abs(p[1] - start[1]);
    if (w > 0 && h > 0) $("roi").value = [x, y, w, h].join(",");
    start = null;
  });
})();

browse("").catch((e) => status("error: " + e.message));
