//! OCR: page orientation, detection, direction classification and recognition.
//!
//! Pre- and post-processing are pure functions on images and arrays
//! (`detect`, `geometry`, `orient`, `recognise`, `tile`); only `model` touches ONNX Runtime.

pub mod detect;
pub mod engine;
pub mod geometry;
pub mod model;
pub mod orient;
pub mod recognise;
pub mod tile;
