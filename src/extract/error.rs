//! Where a schema goes wrong: [`SchemaError`] and the JSON Pointers (RFC 6901)
//! it carries.
//!
//! The lowest file of `extract`: the schema reader and the layout engine's
//! hint reader both report through it.

/// A schema that cannot be used, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if pointer.is_empty() { "(schema root)" } else { pointer.as_str() })]
pub struct SchemaError {
    /// JSON Pointer (RFC 6901) into the schema document; empty for the root.
    pub pointer: String,
    pub message: String,
}

/// A [`SchemaError`] at `pointer`.
pub(crate) fn err(pointer: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// `base` + `/` + `token`, escaped per RFC 6901.
pub fn pointer_join(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(pointer_join("", "a"), "/a");
        assert_eq!(pointer_join("/p", "a/b~c"), "/p/a~1b~0c");
    }

    #[test]
    fn root_is_named() {
        assert_eq!(err("", "bad").to_string(), "(schema root): bad");
        assert_eq!(err("/x", "bad").to_string(), "/x: bad");
    }
}
