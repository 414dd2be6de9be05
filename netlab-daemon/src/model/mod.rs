//! The packet and journey model: decoding captured frames, the public event records
//! and their JSON, kinds, filters, ping journeys, tallies and the closing summary.

pub mod decode;
pub mod event;
pub mod filter;
pub mod journey;
pub mod jsonw;
pub mod kind;
pub mod label_json;
pub mod summary;
pub mod tally;
