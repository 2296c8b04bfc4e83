//! Open sources with their prepared pre-processing, kept between `show` requests: looking
//! through the frames of one scan with the same ROI, mask and images does not reopen the file,
//! re-read the detector mask and rebuild the weights each time. Keyed by the file, its size
//! and modification time and the request's pre-processing words; a few, least recently used
//! dropped first.

use roibin_stxm::show::Viewer;
use roibin_stxm::source::Source;
use std::sync::{Arc, Mutex};

/// How many prepared viewers are kept.
const KEPT: usize = 8;

/// A source and its viewer; one request uses the source at a time.
pub struct Entry {
    pub source: Mutex<Box<dyn Source>>,
    pub viewer: Viewer,
}

/// The kept viewers, most recently used last.
#[derive(Default)]
pub struct Viewers(Mutex<Vec<(String, Arc<Entry>)>>);

impl Viewers {
    /// The entry for `target` and the pre-processing of `req`, opened and prepared if needed.
    pub fn get(
        &self,
        target: &str,
        file: &std::path::Path,
        req: &roibin_stxm::Request,
    ) -> roibin_stxm::Result<Arc<Entry>> {
        let stamp = std::fs::metadata(file)
            .ok()
            .map(|m| format!("{}:{:?}", m.len(), m.modified().ok()))
            .unwrap_or_default();
        // Only what changes the pre-processing belongs in the key.
        let pre = roibin_stxm::Request {
            algo: String::new(),
            signal: None,
            scan: None,
            first: 0,
            polarroi: None,
            radial: None,
            gridroi: None,
            ..req.clone()
        };
        let key = format!("{target}|{stamp}|{}", pre.canonical());
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
            let e = kept.remove(i);
            let entry = e.1.clone();
            kept.push(e);
            return Ok(entry);
        }
        drop(kept);
        let mut source = roibin_stxm::source::open(target)?;
        let viewer = Viewer::new(source.as_mut(), req)?;
        let entry = Arc::new(Entry {
            source: Mutex::new(source),
            viewer,
        });
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.push((key, entry.clone()));
        if kept.len() > KEPT {
            kept.remove(0);
        }
        Ok(entry)
    }
}
