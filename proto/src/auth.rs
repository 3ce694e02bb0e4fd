//! The control plane's optional shared token: every gRPC call carries it as
//! `authorization: Bearer <token>` ([`AttachToken`] on clients) and every server refuses a
//! call without it ([`RequireToken`]). Tokens are compared in constant time and never
//! printed.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The environment variable the CLI and the processes read the token from.
pub const TOKEN_ENV: &str = "SLUICE_AUTH_TOKEN";

/// A channel whose calls carry the token.
pub type AuthChannel = InterceptedService<Channel, AttachToken>;

/// The cluster's token; its `Debug` output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// A token; `None` when `text` is empty.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(Arc::from(text)))
    }

    /// The token itself, to send or compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// True when `given` is `expected`, in time that does not depend on where they differ.
pub fn matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The token of an `Authorization` header value (`Bearer <token>`).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Adds the token, if any, to every call of a client.
#[derive(Clone, Default)]
pub struct AttachToken(Option<MetadataValue<Ascii>>);

impl AttachToken {
    /// Attaches `token`; `None` attaches nothing.
    pub fn new(token: Option<&Token>) -> Result<Self, String> {
        let value = token
            .map(|t| {
                format!("Bearer {}", t.expose())
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| "the auth token must be printable ASCII without spaces".to_string())
            })
            .transpose()?;
        Ok(AttachToken(value))
    }

    /// Wraps `channel` so its calls carry the token.
    pub fn wrap(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self.clone())
    }
}

impl std::fmt::Debug for AttachToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "AttachToken(set)" } else { "AttachToken(none)" })
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Refuses calls without the token, when there is one.
#[derive(Clone, Default)]
pub struct RequireToken(Option<Arc<str>>);

impl RequireToken {
    /// Requires `token`; `None` lets every call through.
    pub fn new(token: Option<&Token>) -> Self {
        RequireToken(token.map(|t| t.0.clone()))
    }
}

impl std::fmt::Debug for RequireToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "RequireToken(set)" } else { "RequireToken(none)" })
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else { return Ok(request) };
        let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).and_then(bearer);
        match given {
            Some(given) if matches(expected, given) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the auth token is wrong")),
            None => Err(Status::unauthenticated(format!(
                "this cluster requires an auth token: set {TOKEN_ENV} (or pass --auth-token) to the cluster's token"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_pass_only_with_the_token() {
        let token = Token::new("s3cret");
        let mut require = RequireToken::new(token.as_ref());
        let mut attach = AttachToken::new(token.as_ref()).unwrap();
        assert!(require.call(attach.call(Request::new(())).unwrap()).is_ok());
        let mut wrong = AttachToken::new(Token::new("guess").as_ref()).unwrap();
        let refused = require.call(wrong.call(Request::new(())).unwrap()).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let missing = require.call(Request::new(())).unwrap_err();
        assert!(missing.message().contains(TOKEN_ENV), "{}", missing.message());
        assert!(RequireToken::new(None).call(Request::new(())).is_ok(), "no token: open");
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = Token::new("s3cret");
        let attach = AttachToken::new(token.as_ref()).unwrap();
        let shown = format!("{attach:?}{:?}{token:?}", RequireToken::new(token.as_ref()));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(Token::new("  "), None);
    }

    #[test]
    fn bearer_values_are_read_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert!(matches("abc", "abc") && !matches("abc", "abd") && !matches("abc", "ab"));
    }
}
