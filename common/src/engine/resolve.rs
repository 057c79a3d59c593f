//! Completes a container's host power with what only the engine can tell
//! ([`crate::power::Reference`]): the power of a container whose namespace it joins or
//! whose volumes it takes, a named volume's driver and options, an image's user. In rounds,
//! because a container looked up can name more, up to [`MAX_DEPTH`].

use std::collections::HashMap;

use super::{Engine, EngineError};
use crate::power::{MAX_DEPTH, Power, Profile, Reference, Resolved};

/// Looks up everything `power` refers to under `profile`. An engine that cannot be reached
/// is an error (the caller tries again later: nothing is judged on it); anything else the
/// engine cannot answer makes the facts it stands for unknown, so that no rule grants them
/// (fail closed).
pub async fn resolve<E: Engine>(engine: &E, power: &mut Power, profile: Profile) -> Result<(), EngineError> {
    for _ in 0..=u32::from(MAX_DEPTH) + 1 {
        let refs = power.references(profile);
        if refs.is_empty() {
            return Ok(());
        }
        let mut answers = HashMap::new();
        for r in refs {
            let answer = match &r {
                Reference::Container(id) => match engine.inspect(id).await {
                    Ok(c) => Some(Resolved::Container(Box::new(c.power))),
                    Err(e) if e.is_unreachable() => return Err(e),
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "a joined container cannot be looked up");
                        None
                    }
                },
                Reference::Volume(name) => match engine.volume(name).await {
                    Ok(Some(v)) => Some(Resolved::Volume(v)),
                    Ok(None) => Some(Resolved::NoVolume),
                    Err(e) if e.is_unreachable() => return Err(e),
                    Err(e) => {
                        tracing::debug!(volume = %name, error = %e, "a volume cannot be looked up");
                        None
                    }
                },
                Reference::Image(image) => match engine.image(image).await {
                    Ok(f) => Some(Resolved::ImageUser(f.user)),
                    Err(e) if e.is_unreachable() => return Err(e),
                    Err(e) => {
                        tracing::debug!(image = %image, error = %e, "an image's user cannot be looked up");
                        None
                    }
                },
            };
            if let Some(a) = answer {
                answers.insert(r, a);
            }
        }
        // What was not answered is now unknown in the facts, which is what it should be.
        let _ = power.resolve(&|r| answers.get(r).cloned());
    }
    Ok(())
}
