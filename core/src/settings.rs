//! Chat settings and profiles: what an assistant declares (`Assistant::settings`,
//! `Assistant::profiles`), what a session chose, and the checks between the two. The choice
//! lives in the session (under a key of Confide's own, so an application's values cannot
//! overwrite it), comes along at sign-in like the session's other values, and reaches every
//! reply as `ReplyContext::settings` and `ReplyContext::profile`.

use crate::model::{ChatSettings, Profile, SettingKind, SettingSpec, SettingValue};
use crate::{ApiError, ErrorCode, guard::VerifiedSession};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use std::collections::BTreeMap;

/// The session value the choice is kept in.
pub(crate) const SETTINGS_KEY: &str = "confide:settings";

/// What a session chose, as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Chosen {
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    values: BTreeMap<String, Value>,
}

/// The values a reply sees: every declared setting, the session's choice or the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    values: BTreeMap<String, Value>,
}

impl Settings {
    /// Settings with these values (for tests; a reply's come from its session).
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Self { values }
    }

    /// The value of setting `id` as `T`; `None` if there is no such setting or it is not a
    /// `T` (a slider is an `f64`, a switch a `bool`, a select or text a `String`).
    pub fn get<T: DeserializeOwned>(&self, id: &str) -> Option<T> {
        self.values
            .get(id)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Every setting's value, by id.
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }
}

fn default_of(kind: &SettingKind) -> Value {
    match kind {
        SettingKind::Select { default, .. } | SettingKind::Text { default, .. } => {
            Value::from(default.clone())
        }
        SettingKind::Slider { default, .. } => Value::from(*default),
        SettingKind::Switch { default } => Value::from(*default),
    }
}

/// `value` if it fits `spec`, else why not.
fn check(spec: &SettingSpec, value: &Value) -> Result<Value, ApiError> {
    let label = &spec.label;
    match &spec.kind {
        SettingKind::Select { options, .. } => match value.as_str() {
            Some(v) if options.iter().any(|o| o.value == v) => Ok(value.clone()),
            _ => Err(ApiError::invalid_input(format!(
                "{label}: choose one of the options"
            ))),
        },
        SettingKind::Slider { min, max, .. } => match value.as_f64() {
            Some(v) if v.is_finite() && (*min..=*max).contains(&v) => Ok(Value::from(v)),
            _ => Err(ApiError::invalid_input(format!(
                "{label}: a number from {min} to {max}"
            ))),
        },
        SettingKind::Switch { .. } => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(ApiError::invalid_input(format!("{label}: on or off"))),
        },
        SettingKind::Text { max_chars, .. } => match value.as_str() {
            Some(v) if v.chars().count() <= *max_chars => Ok(value.clone()),
            Some(_) => Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("{label}: at most {max_chars} characters"),
            )),
            None => Err(ApiError::invalid_input(format!("{label}: text"))),
        },
    }
}

/// The chosen profile: the stored one if it still exists, else the first.
fn profile_of<'a>(profiles: &'a [Profile], chosen: Option<&str>) -> Option<&'a Profile> {
    chosen
        .and_then(|id| profiles.iter().find(|p| p.id == id))
        .or_else(|| profiles.first())
}

/// Every setting's value: the stored one while it still fits its setting (an app may have
/// changed its settings since), else the default.
fn resolve(specs: &[SettingSpec], stored: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    specs
        .iter()
        .map(|spec| {
            let value = stored
                .get(&spec.id)
                .and_then(|v| check(spec, v).ok())
                .unwrap_or_else(|| default_of(&spec.kind));
            (spec.id.clone(), value)
        })
        .collect()
}

async fn stored(session: &VerifiedSession) -> Result<Chosen, ApiError> {
    let Some(bytes) = session.store().get(session.id(), SETTINGS_KEY).await? else {
        return Ok(Chosen::default());
    };
    // A value that no longer reads is as good as none: the defaults apply.
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

/// The settings panel of `session` for an assistant offering `specs` and `profiles`.
pub async fn load(
    session: &VerifiedSession,
    specs: Vec<SettingSpec>,
    profiles: Vec<Profile>,
) -> Result<ChatSettings, ApiError> {
    let chosen = stored(session).await?;
    Ok(ChatSettings {
        profile: profile_of(&profiles, chosen.profile.as_deref()).map(|p| p.id.clone()),
        values: resolve(&specs, &chosen.values)
            .into_iter()
            .filter_map(|(id, v)| Some((id, serde_json::from_value(v).ok()?)))
            .collect(),
        profiles,
        settings: specs,
    })
}

/// What a reply of `session` sees.
pub async fn for_reply(
    session: &VerifiedSession,
    specs: &[SettingSpec],
    profiles: &[Profile],
) -> Result<(Settings, Option<Profile>), ApiError> {
    let chosen = stored(session).await?;
    Ok((
        Settings {
            values: resolve(specs, &chosen.values),
        },
        profile_of(profiles, chosen.profile.as_deref()).cloned(),
    ))
}

/// Takes `profile` (if given) and `values` (any of the settings; the rest keep theirs) as
/// this session's choice. Anything that does not fit (an unknown profile or setting, a
/// value out of range) is refused, and nothing is stored.
pub async fn save(
    session: &VerifiedSession,
    specs: Vec<SettingSpec>,
    profiles: Vec<Profile>,
    profile: Option<String>,
    values: BTreeMap<String, SettingValue>,
) -> Result<ChatSettings, ApiError> {
    if let Some(p) = &profile
        && !profiles.iter().any(|x| &x.id == p)
    {
        return Err(ApiError::invalid_input(format!(
            "there is no profile {p:?}"
        )));
    }
    let mut chosen = stored(session).await?;
    for (id, value) in values {
        let spec = specs
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| ApiError::invalid_input(format!("there is no setting {id:?}")))?;
        let value = serde_json::to_value(&value).map_err(|_| ApiError::internal())?;
        chosen.values.insert(id, check(spec, &value)?);
    }
    chosen
        .values
        .retain(|id, _| specs.iter().any(|s| &s.id == id));
    if profile.is_some() {
        chosen.profile = profile;
    }
    let bytes = serde_json::to_vec(&chosen).map_err(|_| ApiError::internal())?;
    session
        .store()
        .set(session.id(), SETTINGS_KEY, &bytes)
        .await?;
    load(session, specs, profiles).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Choice;

    fn specs() -> Vec<SettingSpec> {
        vec![
            SettingSpec {
                id: "style".into(),
                label: "Style".into(),
                help: None,
                kind: SettingKind::Select {
                    options: vec![
                        Choice {
                            value: "plain".into(),
                            label: "Plain".into(),
                        },
                        Choice {
                            value: "shout".into(),
                            label: "Shout".into(),
                        },
                    ],
                    default: "plain".into(),
                },
            },
            SettingSpec {
                id: "temperature".into(),
                label: "Temperature".into(),
                help: None,
                kind: SettingKind::Slider {
                    min: 0.0,
                    max: 2.0,
                    step: 0.1,
                    default: 0.7,
                },
            },
            SettingSpec {
                id: "emoji".into(),
                label: "Emoji".into(),
                help: None,
                kind: SettingKind::Switch { default: false },
            },
            SettingSpec {
                id: "sign".into(),
                label: "Signature".into(),
                help: None,
                kind: SettingKind::Text {
                    default: String::new(),
                    max_chars: 5,
                },
            },
        ]
    }

    #[test]
    fn values_are_checked_against_their_setting() {
        let s = specs();
        let ok = |i: usize, v: Value| check(&s[i], &v).is_ok();
        assert!(ok(0, "shout".into()) && !ok(0, "SHOUT".into()) && !ok(0, 1.into()));
        assert!(ok(1, 2.0.into()) && ok(1, 0.into()) && !ok(1, 2.01.into()) && !ok(1, "1".into()));
        assert!(ok(2, true.into()) && !ok(2, "true".into()) && !ok(2, 1.into()));
        assert!(ok(3, "héllo".into()) && !ok(3, "toolong".into()) && !ok(3, Value::Null));
        assert_eq!(
            check(&s[3], &"toolong".into()).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn stored_values_that_no_longer_fit_give_way_to_defaults() {
        let stored: BTreeMap<String, Value> = [
            ("style".to_owned(), Value::from("gone")),
            ("temperature".to_owned(), Value::from(1.5)),
            ("removed".to_owned(), Value::from(true)),
        ]
        .into();
        let r = resolve(&specs(), &stored);
        assert_eq!(r["style"], "plain");
        assert_eq!(r["temperature"], 1.5);
        assert_eq!(r["emoji"], false);
        assert!(!r.contains_key("removed"));
        let settings = Settings { values: r };
        assert_eq!(settings.get::<f64>("temperature"), Some(1.5));
        assert_eq!(settings.get::<bool>("temperature"), None);
        assert_eq!(settings.get::<String>("nope"), None);
    }

    #[test]
    fn setting_values_travel_as_bare_json_values() {
        let values: BTreeMap<String, SettingValue> =
            serde_json::from_str(r#"{"a":"shout","b":0.5,"c":true,"d":2}"#).unwrap();
        assert_eq!(values["a"], SettingValue::Text("shout".into()));
        assert_eq!(values["b"], SettingValue::Number(0.5));
        assert_eq!(values["c"], SettingValue::Switch(true));
        assert_eq!(values["d"].as_f64(), Some(2.0));
        assert_eq!(
            serde_json::to_string(&values).unwrap(),
            r#"{"a":"shout","b":0.5,"c":true,"d":2.0}"#
        );
        for bad in [r#"{"a":null}"#, r#"{"a":[1]}"#, r#"{"a":{"b":1}}"#] {
            assert!(
                serde_json::from_str::<BTreeMap<String, SettingValue>>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
