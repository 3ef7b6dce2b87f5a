//! The live view of a recording: the decoder fed each record as the
//! capture writer stores it, in file order, so a sink sees exactly the
//! items `replay` of the finished file gives it.

use super::{DecodeOptions, Decoder, Flow, Item, Numbered, ProcessRow, Sink, Tap};
use std::collections::BTreeMap;

/// A capture tap that decodes into a sink. The sink is made once the
/// recording's clock is in the file (`started_at`, `started_ktime_ns`),
/// from the meta so far. The first error or stop ends the output, never
/// the recording.
pub struct Live<S, F> {
    decoder: Decoder,
    meta: BTreeMap<String, String>,
    make: Option<F>,
    sink: Option<S>,
    ended: bool,
    report: Option<Report>,
}

/// What the tap tells the capture at the end (Tap::finish), asked once the
/// sink has finished.
type Report = Box<dyn FnOnce() -> Vec<(&'static str, String)> + Send>;

impl<S: Sink, F: FnOnce(&BTreeMap<String, String>) -> S> Live<S, F> {
    pub fn new(make: F) -> Self {
        Live {
            decoder: Decoder::new(DecodeOptions::default()),
            meta: BTreeMap::new(),
            make: Some(make),
            sink: None,
            ended: false,
            report: None,
        }
    }

    /// At the end, after the sink's finish, `report` says what to keep in
    /// the capture (what the sink sent elsewhere).
    pub fn reporting(
        mut self,
        report: impl FnOnce() -> Vec<(&'static str, String)> + Send + 'static,
    ) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    fn sink(&mut self) -> &mut S {
        if let Some(make) = self.make.take() {
            self.sink = Some(make(&self.meta));
        }
        self.sink.as_mut().expect("made above")
    }
}

impl<S, F> Tap for Live<S, F>
where
    S: Sink + Send,
    F: FnOnce(&BTreeMap<String, String>) -> S + Send,
{
    fn meta(&mut self, key: &str, value: &str) {
        self.meta.insert(key.to_string(), value.to_string());
        let clock_known = ["started_at", "started_ktime_ns"]
            .iter()
            .all(|k| self.meta.contains_key(*k));
        if clock_known && self.make.is_some() {
            self.sink();
        }
    }

    fn record(&mut self, rec: &Numbered<'_>) {
        self.deliver(|decoder, mut sink| decoder.push(rec, &mut sink));
    }

    fn process(&mut self, row: &ProcessRow) {
        self.sink().process(row);
    }

    fn finish(&mut self) -> Vec<(&'static str, String)> {
        self.deliver(|decoder, mut sink| decoder.finish(&mut sink));
        if let (false, Some(sink)) = (self.ended, self.sink.as_mut()) {
            let sessions: Vec<_> = self.decoder.sessions().cloned().collect();
            let _ = sink.finish(&sessions);
        }
        self.report.take().map_or_else(Vec::new, |r| r())
    }
}

impl<S: Sink, F: FnOnce(&BTreeMap<String, String>) -> S> Live<S, F> {
    /// Runs the decoder, giving its items to the sink until it fails or
    /// says stop.
    fn deliver(&mut self, run: impl FnOnce(&mut Decoder, &mut dyn FnMut(&Item<'_>))) {
        self.sink();
        let Live {
            decoder,
            sink,
            ended,
            ..
        } = self;
        let sink = sink.as_mut().expect("made above");
        run(decoder, &mut |item| {
            if !*ended {
                let size = item.text.len() as u64;
                *ended = !matches!(sink.item(item, size), Ok(Flow::Continue));
            }
        });
    }
}
