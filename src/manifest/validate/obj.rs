//! [`Obj`]: a mapping checked against a key table from `keys.rs`. Creating one rejects unknown keys
//! (with the closest valid key, or the list of valid ones); its accessors read keys by name and
//! point "missing key" errors at the key that introduced the mapping.

use super::values::{is_var_name, key_name, string, string_list};
use super::{Result, did_you_mean, err, err_help};
use crate::diag::Span;
use crate::manifest::keys::Table;
use crate::manifest::raw::{Kind, Node};

/// A mapping checked against a key table.
pub(super) struct Obj<'a> {
    table: &'static Table,
    entries: &'a [(Node, Node)],
    /// Where "missing key" errors point (the key that introduces this mapping).
    at: Span,
    /// How to name this mapping in messages (`environment \`staging\``).
    label: String,
}

impl<'a> Obj<'a> {
    pub(super) fn new(
        node: &'a Node,
        table: &'static Table,
        at: Span,
        label: String,
    ) -> Result<Self> {
        let entries: &'a [(Node, Node)] = match &node.kind {
            Kind::Map(entries) => entries,
            // `name:` with nothing after it: a mapping with no keys.
            _ if node.is_null() => &[],
            _ => {
                return Err(err(
                    if node.is_null() { at } else { node.span },
                    format!("{label}: expected a mapping, found {}", node.describe()),
                ));
            }
        };
        for (k, _) in entries {
            let name = k.scalar_text().unwrap_or_default();
            if table.field(name).is_none() {
                if name == "<<" {
                    return Err(err_help(
                        k.span,
                        "YAML merge keys (`<<`) are not supported",
                        "repeat the keys, or reuse a whole value with an anchor and alias (`&name`, `*name`)",
                    ));
                }
                let help = did_you_mean(name, table.names()).unwrap_or_else(|| {
                    format!(
                        "valid keys here: {}",
                        table.names().collect::<Vec<_>>().join(", ")
                    )
                });
                return Err(err_help(
                    k.span,
                    format!("unknown key `{}` in {label}", name.escape_debug()),
                    help,
                ));
            }
        }
        Ok(Obj {
            table,
            entries,
            at,
            label,
        })
    }

    /// The key and value of `name`; a `null` value counts as absent.
    pub(super) fn get(&self, name: &str) -> Option<(&'a Node, &'a Node)> {
        debug_assert!(
            self.table.field(name).is_some(),
            "key `{name}` missing from table {}",
            self.table.what
        );
        self.entries
            .iter()
            .find(|(k, v)| k.scalar_text() == Some(name) && !v.is_null())
            .map(|(k, v)| (k, v))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| k.scalar_text() == Some(name))
    }

    pub(super) fn required(&self, name: &str) -> Result<(&'a Node, &'a Node)> {
        self.get(name).ok_or_else(|| {
            let desc = self.table.field(name).map_or("", |f| f.description);
            let mut chars = desc.chars();
            let desc: String = chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default();
            err_help(
                self.at,
                format!("missing required key `{name}` in {}", self.label),
                format!("add `{name}:`, {}", desc.trim_end_matches('.')),
            )
        })
    }

    pub(super) fn string(&self, name: &str) -> Result<Option<String>> {
        self.get(name).map(|(k, v)| string(k, v)).transpose()
    }

    pub(super) fn req_string(&self, name: &str) -> Result<String> {
        let (k, v) = self.required(name)?;
        string(k, v)
    }

    /// A list of environment variable names (`env:`); an item that is not one is an error at it.
    pub(super) fn var_list(&self, name: &str) -> Result<Vec<String>> {
        let Some((k, v)) = self.get(name) else {
            return Ok(Vec::new());
        };
        let list = string_list(k, v)?;
        for (var, node) in &list {
            if !is_var_name(var) {
                return Err(err_help(
                    node.span,
                    format!(
                        "`{}`: `{}` is not the name of an environment variable",
                        key_name(k),
                        var.escape_debug()
                    ),
                    "a name is letters, digits and `_`, not starting with a digit, e.g. CLOUDFLARE_API_TOKEN",
                ));
            }
        }
        Ok(list.into_iter().map(|(s, _)| s).collect())
    }
}
