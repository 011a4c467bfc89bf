//! Opt-in RBAC: ServiceAccount bearer tokens authorized by Role,
//! ClusterRole, RoleBinding and ClusterRoleBinding objects the test loads,
//! following Kubernetes' RBAC authorizer rules.
//!
//! Authentication reuses the server's [`Tokens`]: one registry of
//! ServiceAccount tokens, so revoking a token (as deleting its
//! ServiceAccount would) ends both its TokenReviews and its API access.

use crate::error::ApiError;
use crate::resource::Gvr;
use crate::tokens::{TokenInfo, Tokens};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// What a resource request asks to do, as the real server's RequestInfo
/// reports it to authorizers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// Empty for the core group.
    pub group: String,
    pub resource: String,
    /// `status` for `/status` requests.
    pub subresource: Option<String>,
    /// None for cluster-scoped resources and all-namespace requests.
    pub namespace: Option<String>,
    /// The object's name; for list and watch, the name a `metadata.name=`
    /// field selector requires (as the real server derives it).
    pub name: Option<String>,
}

/// The loaded RBAC objects; enforcement is off until [`Authorizer::load`].
#[derive(Clone, Default)]
pub struct Authorizer {
    policy: Arc<RwLock<Option<Policy>>>,
}

#[derive(Clone, Debug, Default)]
struct Policy {
    roles: Vec<Role>,
    bindings: Vec<Binding>,
}

/// A Role (with its namespace) or a ClusterRole (namespace None).
#[derive(Clone, Debug)]
struct Role {
    namespace: Option<String>,
    name: String,
    rules: Vec<Rule>,
}

/// A RoleBinding (namespace Some) or ClusterRoleBinding (None).
#[derive(Clone, Debug)]
struct Binding {
    namespace: Option<String>,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Clone, Debug, Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// The caller a bearer token stands for.
#[derive(Clone, Debug)]
struct User {
    name: String,
    groups: Vec<String>,
}

impl User {
    fn of(info: &TokenInfo) -> Self {
        User {
            name: format!("system:serviceaccount:{}:{}", info.namespace, info.service_account),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", info.namespace),
                "system:authenticated".into(),
            ],
        }
    }

    fn is(&self, subject: &Subject, binding_namespace: Option<&str>) -> bool {
        match subject.kind.as_str() {
            "ServiceAccount" => {
                let ns = subject.namespace.as_deref().or(binding_namespace).unwrap_or("");
                self.name == format!("system:serviceaccount:{ns}:{}", subject.name)
            }
            "User" => self.name == subject.name,
            "Group" => self.groups.contains(&subject.name),
            _ => false,
        }
    }
}

impl Authorizer {
    /// Loads Role, ClusterRole, RoleBinding and ClusterRoleBinding objects
    /// (other kinds are skipped, so a whole manifest set can be passed) and
    /// turns enforcement on. Loading again adds to what is loaded.
    pub fn load(&self, objects: &[Value]) -> Result<usize, String> {
        let mut added = Policy::default();
        for object in objects {
            parse_object(object, &mut added)?;
        }
        let count = added.roles.len() + added.bindings.len();
        let mut policy = self.policy.write().unwrap_or_else(|p| p.into_inner());
        let policy = policy.get_or_insert_with(Policy::default);
        policy.roles.extend(added.roles);
        policy.bindings.extend(added.bindings);
        Ok(count)
    }

    /// Whether [`Authorizer::load`] turned enforcement on.
    pub fn enabled(&self) -> bool {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Whether the ServiceAccount may do what `attrs` describe.
    pub fn allows(&self, info: &TokenInfo, attrs: &Attributes) -> bool {
        let policy = self.policy.read().unwrap_or_else(|p| p.into_inner());
        policy.as_ref().is_some_and(|p| p.allows(&User::of(info), attrs))
    }

    /// Checks a request: without enforcement or without a bearer token
    /// everything passes (the test's own client and kubectl); an unknown
    /// token gets 401; a token's request outside its roles gets 403.
    /// `attrs` is None for non-resource requests (discovery, OpenAPI), which
    /// every authenticated caller may make, as `system:discovery` grants.
    pub(crate) fn check(
        &self,
        tokens: &Tokens,
        headers: &HeaderMap,
        attrs: Option<&Attributes>,
    ) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(token) = bearer(headers) else { return Ok(()) };
        let info = tokens
            .authenticate(token)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))?;
        match attrs {
            Some(attrs) if !self.allows(&info, attrs) => Err(forbidden(&User::of(&info).name, attrs)),
            _ => Ok(()),
        }
    }
}

impl Policy {
    fn allows(&self, user: &User, attrs: &Attributes) -> bool {
        self.bindings.iter().filter(|b| b.subjects.iter().any(|s| user.is(s, b.namespace.as_deref()))).any(|b| {
            // A RoleBinding grants only inside its own namespace.
            let in_scope = b.namespace.is_none() || b.namespace == attrs.namespace;
            in_scope && self.rules_of(b).any(|r| r.allows(attrs))
        })
    }

    fn rules_of<'a>(&'a self, b: &'a Binding) -> impl Iterator<Item = &'a Rule> {
        let wanted_ns = match b.role_ref.kind.as_str() {
            "Role" => b.namespace.clone(),
            _ => None,
        };
        let is_role = b.role_ref.kind == "Role" || b.role_ref.kind == "ClusterRole";
        self.roles
            .iter()
            .filter(move |r| is_role && r.name == b.role_ref.name && r.namespace == wanted_ns)
            .flat_map(|r| r.rules.iter())
    }
}

impl Rule {
    fn allows(&self, attrs: &Attributes) -> bool {
        let any = |list: &[String], wanted: &str| list.iter().any(|x| x == "*" || x == wanted);
        let resource_ok = self.resources.iter().any(|r| match &attrs.subresource {
            None => r == "*" || *r == attrs.resource,
            Some(sub) => r == "*" || *r == format!("{}/{sub}", attrs.resource) || *r == format!("*/{sub}"),
        });
        let name_ok = self.resource_names.is_empty()
            || attrs.name.as_deref().is_some_and(|n| self.resource_names.iter().any(|x| x == n));
        any(&self.verbs, &attrs.verb) && any(&self.api_groups, &attrs.group) && resource_ok && name_ok
    }
}

fn parse_object(object: &Value, policy: &mut Policy) -> Result<(), String> {
    let kind = object["kind"].as_str().unwrap_or("");
    let group_ok = object["apiVersion"].as_str() == Some("rbac.authorization.k8s.io/v1");
    if !group_ok || !matches!(kind, "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") {
        return Ok(());
    }
    let name = object["metadata"]["name"].as_str().ok_or_else(|| format!("a {kind} without metadata.name"))?;
    let namespace = match kind {
        "Role" | "RoleBinding" => Some(
            object["metadata"]["namespace"]
                .as_str()
                .ok_or_else(|| format!("{kind} {name} has no metadata.namespace"))?
                .to_string(),
        ),
        _ => None,
    };
    let field = |key: &str| -> Result<Value, String> { Ok(object.get(key).cloned().unwrap_or(Value::Null)) };
    match kind {
        "Role" | "ClusterRole" => {
            let rules: Option<Vec<Rule>> =
                serde_json::from_value(field("rules")?).map_err(|e| format!("{kind} {name}: rules: {e}"))?;
            policy.roles.push(Role { namespace, name: name.into(), rules: rules.unwrap_or_default() });
        }
        _ => {
            let role_ref: RoleRef =
                serde_json::from_value(field("roleRef")?).map_err(|e| format!("{kind} {name}: roleRef: {e}"))?;
            if kind == "ClusterRoleBinding" && role_ref.kind != "ClusterRole" {
                return Err(format!("ClusterRoleBinding {name} must refer to a ClusterRole"));
            }
            let subjects: Option<Vec<Subject>> =
                serde_json::from_value(field("subjects")?).map_err(|e| format!("{kind} {name}: subjects: {e}"))?;
            policy.bindings.push(Binding { namespace, role_ref, subjects: subjects.unwrap_or_default() });
        }
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The name a list or watch addresses through its field selector: the
/// real server takes `metadata.name=<name>` (or `==`) from the selector
/// into the request's name, so a rule's resourceNames can allow it.
pub(crate) fn selector_name(field_selector: Option<&str>) -> Option<String> {
    field_selector?.split(',').find_map(|term| {
        let value = term.trim().strip_prefix("metadata.name")?.trim_start();
        let value = value.strip_prefix("==").or_else(|| value.strip_prefix('='))?;
        Some(value.trim().to_string()).filter(|v| !v.is_empty())
    })
}

/// The real server's words: `<resource> "<name>" is forbidden: User "<u>"
/// cannot <verb> resource "<resource[/sub]>" in API group "<g>" in the
/// namespace "<ns>"` (or `at the cluster scope`).
fn forbidden(user: &str, a: &Attributes) -> ApiError {
    let qualified = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    let subject = match &a.name {
        Some(name) => format!("{qualified} \"{name}\""),
        None => qualified,
    };
    let resource = match &a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.clone(),
    };
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        a.verb, a.group
    );
    let mut e = ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message);
    // Status details name the group and the resource (as `kind`), as the real server's do.
    e.details = Some(Box::new((Gvr::new(&a.group, "", &a.resource), a.name.clone().unwrap_or_default())));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_field_selectors() {
        assert_eq!(selector_name(Some("metadata.name=keys")), Some("keys".into()));
        assert_eq!(selector_name(Some("metadata.namespace=x,metadata.name==keys")), Some("keys".into()));
        assert_eq!(selector_name(Some("metadata.name!=keys")), None);
        assert_eq!(selector_name(Some("metadata.name=")), None);
        assert_eq!(selector_name(None), None);
    }
}
