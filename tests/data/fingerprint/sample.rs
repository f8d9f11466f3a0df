use std::fmt;
/// Documentation comment.
pub struct Wrapper<'a> { inner: &'a str }
impl<'a> fmt::Display for Wrapper<'a> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let raw = r#"raw "string""#; /* block */
        let c = 'x';
        write!(f, "{}{}{}", self.inner, raw, c as u32 + 1_000u32)
    }
}
