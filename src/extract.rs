//! Field extraction: a user's JSON Schema in, one typed record per document out.
//!
//! - [`schema`]: the JSON Schema is checked and read into [`FieldDef`]s of a
//!   [`FieldType`] ([`FieldSchema`]); unsupported constructs are refused with
//!   the JSON Pointer of the offending place ([`SchemaError`]). Their Arrow
//!   columns are built by [`crate::output`].
//! - [`layout`]: the embedded engine that finds each field from OCR /
//!   text-layer lines and their positions ([`LayoutEngine`]), steered by the
//!   `x-docpipe` hints of [`layout::hints`], with the typed value parsers of
//!   [`parse`].
//! - [`merge`]: per-page records of one document merged into one.
//! - [`adapters`]: engines' output turned into a document's validated record.
//! - [`validate`]: a [`Record`] validated against the user's schema.
//!
//! Every engine returns a [`Record`]: field name to [`FieldValue`] (value,
//! confidence, page and box it came from). Validation turns it into an
//! [`Extracted`] (record + [`ValidationError`]s) which the `documents/`
//! table stores as typed columns.
//!
//! Files import downwards only: `error`, `parse` and `record` import no other
//! file of `extract`; `layout/hints` imports `error`; `field` imports
//! `layout/hints` and `parse`; `schema` imports those; `validate`, `merge` and
//! `layout` import the ones below them; `adapters` (an engine's output turned
//! into a document's record) imports from the whole module and nothing
//! imports it. Nothing here imports `output` or `pipeline`.

pub mod adapters;
mod error;
mod field;
pub mod layout;
pub mod merge;
pub mod parse;
mod record;
pub mod schema;
pub mod validate;
pub mod vlm;

pub use error::{pointer_join, SchemaError};
pub use field::{json_i64, FieldDef, FieldType};
pub use layout::hints::{Hints, Pick, Position};
pub use layout::{LayoutEngine, Line, PageLines};
pub use merge::merge_pages;
pub use record::{FieldValue, Record};
pub use schema::FieldSchema;
pub use validate::{Extracted, ValidationError};
