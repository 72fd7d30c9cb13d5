//! OCR: detection, direction classification and recognition.
//!
//! Pre- and post-processing are pure functions on images and arrays
//! (`detect`, `geometry`, `recognise`, `tile`); only `model` touches ONNX Runtime.

pub mod detect;
pub mod geometry;
pub mod recognise;
pub mod tile;
