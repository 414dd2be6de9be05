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
                    // Podman says `remove` where Docker says `destroy`.
                    "destroy" | "remove" => Some(Self::ContainerDestroyed { id, name }),
                    _ => None,
                }
            }
            // Podman's network events (4.x) name the container, not the network, and carry
            // no `container` attribute: none of them is taken for a network's.
            EventMessageTypeEnum::NETWORK if attr("podId").is_some() => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> EventMessage {
        serde_json::from_str(json).expect("fixture parses")
    }

    /// Events of Podman 4.3.1's compatible `GET /events`, recorded (`podman run`, `podman
    /// network connect`, `podman rm -f`).
    #[test]
    fn podman_events() {
        let removed = event(
            r#"{"status":"remove","id":"5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c","from":"docker.io/netlab/busybox:latest","Type":"container","Action":"remove","Actor":{"ID":"5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c","Attributes":{"containerExitCode":"0","image":"docker.io/netlab/busybox:latest","name":"pz","org.netlab.recipe":"e60f4ef0a30d647f","podId":""}},"scope":"local","time":1796181257,"timeNano":1796181257936390668}"#,
        );
        assert_eq!(
            Happening::of(&removed),
            Some(Happening::ContainerDestroyed {
                id: "5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c".into(),
                name: "pz".into(),
            })
        );
        // `name` is the container's here: not a network's.
        let disconnected = event(
            r#"{"status":"disconnect","id":"5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c","Type":"network","Action":"disconnect","Actor":{"ID":"5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c","Attributes":{"containerExitCode":"0","image":"","name":"pz","podId":""}},"scope":"local","time":1796181257,"timeNano":1796181257736390668}"#,
        );
        assert_eq!(Happening::of(&disconnected), None);
        assert_eq!(
            crate::docker::event_container(&disconnected),
            Some("5ca302f51436aef7a996563a1c4473392b99838ae29003744d1f0a98bf1dd89c")
        );
    }
}
