//! The query stage, between decoding and output: which items a reader
//! shows ([`Selection`]), where they come from (the decoder, or the
//! capture's [`index`], whichever serves), and the one contract by which
//! they reach an output ([`Sink`]). [`run`] is the one driver; [`Live`]
//! feeds a sink while recording; [`Overview`] is what `info` shows.
//!
//! Everything a later stage needs of earlier ones is re-exported here, so
//! that nothing reaches past this stage (DEVELOPERS.md, "Stages").

pub mod check;
pub mod derive;
mod driver;
pub mod index;
mod live;
#[cfg(test)]
mod mixtures;
mod overview;
mod selection;
mod sink;
mod undecoded;

pub use driver::{run, IndexUse, Outcome, Progress, QueryError, Quiet};
pub use live::Live;
pub use overview::{Damage, Overview};
pub use selection::{view_key, Selection};
pub use sink::{Fanout, Flow, Limit, Sink};

use crate::decode::{classify, DecodeOptions, Decoder, Numbered, Protocol, Record, KEYLOG_FEATURE};
pub use crate::decode::{error_name, method_about};
pub use crate::decode::{
    BatchPos, CopyInfo, Direction, Flag, FlagReason, HttpMeta, HttpSession, HttpView,
    Implementation, Item, Kind, Loss, Peer, RequestRef, Round, SessionSummary, Transport,
    WriterPiece,
};
pub use crate::decode::{
    Block, BlockError, BlockFacts, BlockFilter, CaptureError, CaptureReader, CaptureWriter,
    CreateOptions, DropRow, ProcessRow, Report, SigningIdentity, Step, Streams, Tap, Totals,
    Verdict, VerifyOptions, ViewKey,
};
