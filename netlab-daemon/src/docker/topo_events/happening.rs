//! What a Docker event says happened: the containers and networks that topology events
//! speak of, and what explains why an interface went.

use bollard::models::{EventMessage, EventMessageTypeEnum};

/// What a Docker event says happened, for topology events and for explaining why an
/// interface went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Happening {
    ContainerStarted {
        id: String,
        name: String,
        image: Option<String>,
    },
    ContainerDied {
        id: String,
        name: String,
    },
    ContainerDestroyed {
        id: String,
        name: String,
    },
    NetworkCreated {
        name: String,
        driver: Option<String>,
    },
    NetworkDestroyed {
        name: String,
    },
    /// Container `container` (its id) left network `network`.
    Disconnected {
        network: String,
        container: String,
    },
}

impl Happening {
    /// The happening of a Docker event, when it is one.
    pub fn of(ev: &EventMessage) -> Option<Self> {
        let actor = ev.actor.as_ref()?;
        let attr = |k: &str| actor.attributes.as_ref().and_then(|a| a.get(k)).cloned();
        let id = actor.id.clone().unwrap_or_default();
        let action = ev.action.as_deref()?;
        match ev.typ? {
            EventMessageTypeEnum::CONTAINER => {
                let name = attr("name").unwrap_or_else(|| id.chars().take(12).collect());
                match action {
                    "start" => Some(Self::ContainerStarted {
                        id,
                        name,
                        image: attr("image"),
                    }),
                    "die" => Some(Self::ContainerDied { id, name }),
                    "destroy" => Some(Self::ContainerDestroyed { id, name }),
                    _ => None,
                }
            }
            EventMessageTypeEnum::NETWORK => {
                let name = attr("name")?;
                match action {
                    "create" => Some(Self::NetworkCreated {
                        name,
                        driver: attr("type"),
                    }),
                    "destroy" => Some(Self::NetworkDestroyed { name }),
                    "disconnect" => Some(Self::Disconnected {
                        network: name,
                        container: attr("container")?,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}
