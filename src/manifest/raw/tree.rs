//! The parser's events → the [`Node`] tree: a stack of the collections still open, anchors kept
//! for their aliases, and the checks made while the tree grows (one document, the nesting and
//! alias-expansion limits, keys that are plain words and not repeated in a mapping).

use super::Locator;
use super::{Failure, Kind, MAX_ALIAS_NODES, MAX_DEPTH, ManifestError, Node, err, too_deep};
use crate::diag::Span;
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        seen: HashMap<String, Span>,
    },
}

/// The outermost flow collection (`[…]` or `{…}`) the parser has opened, if any. The parser reads
/// ahead, so collections nested in it may not have reached the stack yet:
/// [`innermost_open`](super::innermost_open) finds them in the text.
fn open_flow(stack: &[Frame], text: &str) -> Option<Span> {
    stack.iter().find_map(|f| {
        let span = match f {
            Frame::Seq { span, .. } | Frame::Map { span, .. } => *span,
        };
        text[span.offset.min(text.len())..]
            .starts_with(['[', '{'])
            .then_some(span)
    })
}

pub(super) fn build(text: &str, loc: &Locator) -> Result<Node, Failure> {
    let mut parser = Parser::new_from_str(text);
    let mut tree = Tree::new();
    while let Some(ev) = parser.next_event() {
        let (event, sspan) = match ev {
            Ok(ev) => ev,
            Err(e) => return Err(Failure::Scan(e, open_flow(&tree.stack, text))),
        };
        let span = loc.span(&sspan);
        if let Some((node, anchor)) = tree.event(event, span)? {
            tree.attach(node, anchor)?;
        }
    }
    Ok(tree.finish()?)
}

/// The tree while the parser's events build it: the collections still open, the anchored nodes,
/// what alias expansion may still add, the root once it is complete, the documents seen.
struct Tree {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_budget: usize,
    root: Option<Node>,
    documents: usize,
}

impl Tree {
    fn new() -> Self {
        Tree {
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: MAX_ALIAS_NODES,
            root: None,
            documents: 0,
        }
    }

    /// Applies one event; returns the node it completes, with its anchor (0 for none), if any.
    fn event(&mut self, event: Event, span: Span) -> Result<Option<(Node, usize)>, ManifestError> {
        Ok(match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(err(
                        span,
                        "a manifest holds one YAML document; found a second one",
                        Some(
                            "remove the `---` line and everything after it, or merge the documents"
                                .into(),
                        ),
                    ));
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                let str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let quoted = !matches!(style, ScalarStyle::Plain) || str_tag;
                Some((
                    Node {
                        kind: Kind::Scalar {
                            value: value.into_owned(),
                            quoted,
                        },
                        span,
                    },
                    anchor,
                ))
            }
            Event::SequenceStart(anchor, _) => {
                let items = Vec::new();
                push_frame(
                    &mut self.stack,
                    Frame::Seq {
                        span,
                        anchor,
                        items,
                    },
                    span,
                )?;
                None
            }
            Event::MappingStart(anchor, _) => {
                let frame = Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    seen: HashMap::new(),
                };
                push_frame(&mut self.stack, frame, span)?;
                None
            }
            Event::SequenceEnd => Some(self.close_seq(span)?),
            Event::MappingEnd => Some(self.close_map(span)?),
            Event::Alias(id) => Some((self.alias(id, span)?, 0)),
        })
    }

    /// Closes the innermost collection, which a `SequenceEnd` event says is a list.
    fn close_seq(&mut self, span: Span) -> Result<(Node, usize), ManifestError> {
        match self.stack.pop() {
            Some(Frame::Seq {
                span,
                anchor,
                items,
            }) => Ok((
                Node {
                    kind: Kind::Seq(items),
                    span,
                },
                anchor,
            )),
            _ => Err(err(span, "YAML syntax error: unbalanced list", None)),
        }
    }

    /// Closes the innermost collection, which a `MappingEnd` event says is a mapping.
    fn close_map(&mut self, span: Span) -> Result<(Node, usize), ManifestError> {
        match self.stack.pop() {
            Some(Frame::Map {
                span,
                anchor,
                entries,
                ..
            }) => Ok((
                Node {
                    kind: Kind::Map(entries),
                    span,
                },
                anchor,
            )),
            _ => Err(err(span, "YAML syntax error: unbalanced mapping", None)),
        }
    }

    /// A copy of the anchored node, within the alias budget and the nesting limit.
    fn alias(&mut self, id: usize, span: Span) -> Result<Node, ManifestError> {
        let Some(target) = self.anchors.get(&id) else {
            return Err(err(span, "this alias refers to an unknown anchor", None));
        };
        let n = target.count();
        if n > self.alias_budget {
            return Err(err(
                span,
                format!("alias expansion exceeds the limit of {MAX_ALIAS_NODES} nodes"),
                Some("use fewer or smaller aliases (`*name`)".into()),
            ));
        }
        self.alias_budget -= n;
        if self.stack.len() + target.depth() > MAX_DEPTH {
            return Err(too_deep(span));
        }
        let mut node = target.clone();
        node.span = span;
        Ok(node)
    }

    /// Puts a complete node where it belongs: the root, the next item of a list, or a mapping's
    /// key (checked for duplicates) or value.
    fn attach(&mut self, node: Node, anchor: usize) -> Result<(), ManifestError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(err(node.span, "a manifest holds one YAML document", None));
                }
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                seen,
                ..
            }) => match pending_key.take() {
                None => {
                    new_key(seen, &node)?;
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<Node, ManifestError> {
        self.root.ok_or_else(|| ManifestError {
            message: "the manifest is empty".into(),
            span: Some(Span {
                offset: 0,
                len: 0,
                line: 1,
                col: 1,
            }),
            help: Some("start with `version: 1` and `project: NAME`".into()),
            source: None,
        })
    }
}

/// A mapping's key: a plain word, not seen before in the mapping.
fn new_key(seen: &mut HashMap<String, Span>, node: &Node) -> Result<(), ManifestError> {
    let Some(name) = node.scalar_text() else {
        return Err(err(
            node.span,
            format!("a key must be a plain word, found {}", node.describe()),
            None,
        ));
    };
    if let Some(first) = seen.get(name) {
        return Err(err(
            node.span,
            format!(
                "duplicate key `{name}` (first defined on line {})",
                first.line
            ),
            Some("remove one of them or merge them".into()),
        ));
    }
    seen.insert(name.to_string(), node.span);
    Ok(())
}

fn push_frame(stack: &mut Vec<Frame>, frame: Frame, span: Span) -> Result<(), ManifestError> {
    if stack.len() >= MAX_DEPTH {
        return Err(too_deep(span));
    }
    stack.push(frame);
    Ok(())
}
