//! Reading claims from a JWT without checking its signature: caw only wants
//! to know when a token expires and whose it is, never to trust it.

use base64::Engine as _;
use serde_json::Value;

/// The claims object of `token`, if it is a JWT whose payload is JSON.
pub(super) fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.is_object().then_some(claims)
}

/// The `exp` claim (seconds since the epoch).
pub(super) fn exp(claims: &Value) -> Option<jiff::Timestamp> {
    let exp = claims.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    jiff::Timestamp::from_second(secs).ok()
}

/// The e-mail address the token was issued for: the standard `email` claim,
/// or OpenAI's `https://api.openai.com/profile` one.
pub(super) fn email(claims: &Value) -> Option<&str> {
    claims
        .get("email")
        .or_else(|| claims.pointer("/https:~1~1api.openai.com~1profile/email"))
        .and_then(Value::as_str)
}

#[cfg(test)]
pub(crate) fn encode(claims: &str) -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_and_email_and_refuses_garbage() {
        let c = claims(&encode(r#"{"exp":1700000000,"email":"a@b"}"#)).unwrap();
        assert_eq!(exp(&c).unwrap().as_second(), 1_700_000_000);
        assert_eq!(email(&c), Some("a@b"));
        let openai = claims(&encode(
            r#"{"https://api.openai.com/profile":{"email":"o@p"}}"#,
        ))
        .unwrap();
        assert_eq!(email(&openai), Some("o@p"));
        assert_eq!(claims("not.a-jwt!.x"), None);
        assert_eq!(claims("onlyonepart"), None);
        assert_eq!(claims(&encode("[1]")), None);
    }
}
