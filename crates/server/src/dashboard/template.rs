//! A very small template renderer for the page shells.
//!
//! `{{name}}` is replaced by the value of `name`, HTML-escaped (safe in
//! element content and quoted attributes); `{{{name}}}` by the value as it
//! is, for HTML built here from escaped parts. A name without a value is an
//! error, so a typo cannot silently render an empty string.

use std::fmt;

// The same escaping as the backtest reports' pages.
pub use backtest::html::{escape, escape_into};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// Renders `template` with `vars`.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (raw, open, close) = if after.starts_with("{{{") { (true, 3, "}}}") } else { (false, 2, "}}") };
        let Some(end) = after[open..].find(close) else {
            return Err(TemplateError(format!("unclosed placeholder near '{}'", excerpt(after))));
        };
        let name = after[open..open + end].trim();
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| TemplateError(format!("no value for placeholder '{name}'")))?;
        if raw {
            out.push_str(value);
        } else {
            escape_into(&mut out, value);
        }
        rest = &after[open + end + close.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_escaped_unless_raw() {
        let vars = [("name", "<b>\"Bob\" & 'Al'</b>"), ("html", "<i>ok</i>")];
        let out = render("<p title=\"{{name}}\">{{ name }}</p>{{{html}}}", &vars).unwrap();
        assert_eq!(
            out,
            "<p title=\"&lt;b&gt;&quot;Bob&quot; &amp; &#39;Al&#39;&lt;/b&gt;\">&lt;b&gt;&quot;Bob&quot; &amp; &#39;Al&#39;&lt;/b&gt;</p><i>ok</i>"
        );
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_errors() {
        assert!(render("{{missing}}", &[]).unwrap_err().0.contains("missing"));
        assert!(render("a {{open", &[("open", "")]).unwrap_err().0.contains("unclosed"));
        assert_eq!(render("no placeholders", &[]).unwrap(), "no placeholders");
    }
}
