//! What an MCP tool call answered, typed once at the door, then shown to the model as text.
//! Text and structured content are kept; an image or audio clip becomes a placeholder with
//! its type and size (the model gets no base64).

use praxis_core::{ExecStatus, Observation};
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde_json::Value;

/// One piece of a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    /// An image or audio clip: its MIME type and decoded size.
    Media {
        kind: &'static str,
        mime_type: String,
        bytes: u64,
    },
    /// An embedded resource (its text when it has one) or a link to one.
    Resource {
        uri: String,
        text: Option<String>,
    },
}

/// A `tools/call` result.
#[derive(Clone, Debug, PartialEq)]
pub struct McpOutput {
    pub is_error: bool,
    pub parts: Vec<Part>,
    pub structured: Option<Value>,
}

/// Decoded size of base64 text (without decoding it).
fn base64_size(data: &str) -> u64 {
    let len = data.trim_end().len() as u64;
    let padding = data
        .trim_end()
        .bytes()
        .rev()
        .take_while(|b| *b == b'=')
        .count() as u64;
    (len / 4 * 3).saturating_sub(padding.min(2))
}

impl McpOutput {
    pub fn from_result(result: CallToolResult) -> Self {
        let parts = result
            .content
            .into_iter()
            .map(|block| match block {
                ContentBlock::Text(t) => Part::Text(t.text),
                ContentBlock::Image(i) => Part::Media {
                    kind: "image",
                    bytes: base64_size(&i.data),
                    mime_type: i.mime_type,
                },
                ContentBlock::Audio(a) => Part::Media {
                    kind: "audio",
                    bytes: base64_size(&a.data),
                    mime_type: a.mime_type,
                },
                ContentBlock::Resource(r) => match r.resource {
                    ResourceContents::TextResourceContents { uri, text, .. } => Part::Resource {
                        uri,
                        text: Some(text),
                    },
                    ResourceContents::BlobResourceContents { uri, .. } => {
                        Part::Resource { uri, text: None }
                    }
                    other => Part::Text(format!(
                        "[a resource of a kind Praxis does not know: {other:?}]"
                    )),
                },
                ContentBlock::ResourceLink(link) => Part::Resource {
                    uri: link.uri.clone(),
                    text: None,
                },
                other => Part::Text(format!(
                    "[content of a kind Praxis does not know: {other:?}]"
                )),
            })
            .collect();
        McpOutput {
            is_error: result.is_error.unwrap_or(false),
            parts,
            structured: result.structured_content,
        }
    }

    /// The text the model sees.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Media {
                    kind,
                    mime_type,
                    bytes,
                } => format!("[{kind}: {mime_type}, {bytes} bytes]"),
                Part::Resource {
                    uri,
                    text: Some(text),
                } => format!("[resource {uri}]\n{text}"),
                Part::Resource { uri, text: None } => format!("[resource {uri}]"),
            })
            .collect();
        if let Some(structured) = &self.structured {
            lines.push(format!("[structured content]\n{structured}"));
        }
        lines.join("\n")
    }

    /// The observation: status from `isError`, the rendering capped at `limit` bytes.
    pub fn observation(&self, limit: usize) -> Observation {
        let observation = praxis_tools::registry::capped_ok(limit, self.render());
        if self.is_error {
            Observation {
                status: ExecStatus::Error,
                ..observation
            }
        } else {
            observation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ContentBlock, ImageContent};

    #[test]
    fn text_images_and_structured_content_are_kept() {
        let mut result = CallToolResult::success(vec![
            ContentBlock::text("hello"),
            ContentBlock::Image(ImageContent::new("aGVsbG8=", "image/png")),
        ]);
        result.structured_content = Some(serde_json::json!({"sum": 3}));
        let output = McpOutput::from_result(result);
        assert_eq!(
            output.render(),
            "hello\n[image: image/png, 5 bytes]\n[structured content]\n{\"sum\":3}"
        );
        let o = output.observation(1 << 20);
        assert_eq!(o.status, ExecStatus::Ok);
        let capped = output.observation(4);
        assert!(capped.truncated_bytes > 0, "{capped:?}");
        let error = McpOutput::from_result(CallToolResult::error(vec![ContentBlock::text("bad")]));
        assert_eq!(error.observation(100).status, ExecStatus::Error);
        assert_eq!(base64_size("aGk="), 2);
        assert_eq!(base64_size("aGVsbG8h"), 6);
    }
}
