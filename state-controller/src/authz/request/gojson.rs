//! Go's `encoding/json` decoding, modelled where it decides what the engine reads: values
//! are decoded *into* what is already there, as Go's reflection does, so that duplicate
//! keys, `null` and case-folded names read exactly as the engine reads them:
//! - object keys match fields case-insensitively with Go's folding ([`super::go_fold_eq`]),
//!   in document order; a later duplicate decodes into the same field (for a struct, into
//!   the same struct: fields the second object leaves out keep the first one's values);
//! - a JSON array into a slice reuses the elements already there (Go decodes element `i`
//!   into the existing element `i`, then cuts the slice to the new length): `[null]` after
//!   `["/:/host"]` leaves `"/:/host"`;
//! - `null` sets a slice, map or pointer to nil, and leaves a string, bool or struct as it
//!   was; an object into a map adds to the map there is, each value decoded from zero;
//! - a value of the wrong type is an error (the engine answers 400; the plugin denies).
//!
//! The Go shapes are the ones in `common::power::spec` (their `Option`s are Go pointers and
//! nil-able slices); [`go_struct!`] writes the field tables.

use std::collections::BTreeMap;
use std::fmt;

use common::power::spec::{
    BindOptionsSpec, DeviceRequestSpec, DeviceSpec, DriverSpec, HostConfigSpec, MountSpec, VolumeOptionsSpec,
};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A value Go decodes in place.
pub(super) trait GoDecode {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error>;
}

/// A Go struct: decodes the value of one key, if the key names one of its fields.
pub(super) trait GoFields {
    /// `Ok(true)` when `key` named a field (its value is consumed), `Ok(false)` when not
    /// (the caller skips the value).
    fn decode_field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// Decodes into `&mut T` (a [`DeserializeSeed`] for `next_value_seed`).
pub(super) struct InPlace<'a, T>(pub &'a mut T);

impl<'de, T: GoDecode> DeserializeSeed<'de> for InPlace<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.decode(d)
    }
}

impl GoDecode for String {
    /// A string sets it; `null` leaves it.
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        if let Some(s) = Option::<String>::deserialize(d)? {
            *self = s;
        }
        Ok(())
    }
}

impl GoDecode for bool {
    /// `true`/`false` set it; `null` leaves it.
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        if let Some(b) = Option::<bool>::deserialize(d)? {
            *self = b;
        }
        Ok(())
    }
}

impl<T: GoDecode + Default> GoDecode for Vec<T> {
    /// A Go slice: `null` makes it nil (empty here), an array decodes in place.
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(SliceVisitor(self))
    }
}

struct SliceVisitor<'a, T>(&'a mut Vec<T>);

impl<'de, T: GoDecode + Default> Visitor<'de> for SliceVisitor<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        decode_seq_in_place(self.0, seq)
    }
}

/// Go's array decoding into a slice: element `i` into the element there is, new ones from
/// zero, the slice cut to the array's length.
fn decode_seq_in_place<'de, T: GoDecode + Default, A: SeqAccess<'de>>(
    v: &mut Vec<T>,
    mut seq: A,
) -> Result<(), A::Error> {
    let mut i = 0;
    loop {
        let more = match v.get_mut(i) {
            Some(slot) => seq.next_element_seed(InPlace(slot))?.is_some(),
            None => {
                let mut fresh = T::default();
                let more = seq.next_element_seed(InPlace(&mut fresh))?.is_some();
                if more {
                    v.push(fresh);
                }
                more
            }
        };
        if !more {
            break;
        }
        i += 1;
    }
    v.truncate(i);
    Ok(())
}

impl<T: GoDecode + Default> GoDecode for Option<T> {
    /// A Go pointer (or nil-able slice): `null` makes it nil; a value decodes into what it
    /// points at, allocated from zero when nil.
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(PointerVisitor(self))
    }
}

struct PointerVisitor<'a, T>(&'a mut Option<T>);

impl<'de, T: GoDecode + Default> Visitor<'de> for PointerVisitor<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        *self.0 = None;
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.get_or_insert_with(T::default).decode(d)
    }
}

impl<T: GoDecode + Default> GoDecode for BTreeMap<String, T> {
    /// A Go map: `null` makes it nil (empty here); an object adds to it, each value
    /// decoded from zero (`null` is the zero value).
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(MapVisitor(self))
    }
}

struct MapVisitor<'a, T>(&'a mut BTreeMap<String, T>);

impl<'de, T: GoDecode + Default> Visitor<'de> for MapVisitor<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            let mut v = T::default();
            map.next_value_seed(InPlace(&mut v))?;
            self.0.insert(k, v);
        }
        Ok(())
    }
}

/// A Go struct's value: `null` leaves it; an object decodes its keys into its fields.
pub(super) struct StructVisitor<'a, T> {
    pub target: &'a mut T,
    pub what: &'static str,
}

impl<'de, T: GoFields> Visitor<'de> for StructVisitor<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if !self.target.decode_field(&key, &mut map)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The field table of a Go struct: `go_struct!(Type, "what", |s| { "JsonName" => seed })`,
/// where `seed` decodes into a field of `s` (usually `InPlace(&mut s.field)`).
macro_rules! go_struct {
    ($ty:ty, $what:literal, |$s:ident| { $($json:literal => $seed:expr),* $(,)? }) => {
        impl $crate::authz::request::gojson::GoFields for $ty {
            fn decode_field<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                let $s = self;
                $(
                    if $crate::authz::request::go_fold_eq(key, $json) {
                        map.next_value_seed($seed)?;
                        return Ok(true);
                    }
                )*
                Ok(false)
            }
        }
        impl $crate::authz::request::gojson::GoDecode for $ty {
            fn decode<'de, D: serde::Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
                d.deserialize_option($crate::authz::request::gojson::StructVisitor {
                    target: self,
                    what: $what,
                })
            }
        }
    };
}
pub(super) use go_struct;

/// `CapAdd`/`CapDrop`: a `[]string` on current engines (decoded in place), a
/// `strslice.StrSlice` on engines before 29, which also take a single string. Both are
/// read: a string is a one-element list.
pub(super) struct StrSlice<'a>(pub &'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for StrSlice<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSlice<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings or a string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        *self.0 = vec![s.to_string()];
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        decode_seq_in_place(self.0, seq)
    }
}

go_struct!(HostConfigSpec, "a HostConfig object", |h| {
    "Privileged" => InPlace(&mut h.privileged),
    "PidMode" => InPlace(&mut h.pid_mode),
    "NetworkMode" => InPlace(&mut h.network_mode),
    "IpcMode" => InPlace(&mut h.ipc_mode),
    "UTSMode" => InPlace(&mut h.uts_mode),
    "UsernsMode" => InPlace(&mut h.userns_mode),
    "CgroupnsMode" => InPlace(&mut h.cgroupns_mode),
    "Binds" => InPlace(&mut h.binds),
    "Mounts" => InPlace(&mut h.mounts),
    "VolumesFrom" => InPlace(&mut h.volumes_from),
    "CapAdd" => StrSlice(&mut h.cap_add),
    "CapDrop" => StrSlice(&mut h.cap_drop),
    "Devices" => InPlace(&mut h.devices),
    "DeviceRequests" => InPlace(&mut h.device_requests),
    "DeviceCgroupRules" => InPlace(&mut h.device_cgroup_rules),
    "SecurityOpt" => InPlace(&mut h.security_opt),
    "Sysctls" => InPlace(&mut h.sysctls),
    "MaskedPaths" => InPlace(&mut h.masked_paths),
    "ReadonlyPaths" => InPlace(&mut h.readonly_paths),
});

go_struct!(MountSpec, "a mount object", |m| {
    "Type" => InPlace(&mut m.kind),
    "Source" => InPlace(&mut m.source),
    "Target" => InPlace(&mut m.target),
    "ReadOnly" => InPlace(&mut m.read_only),
    "BindOptions" => InPlace(&mut m.bind),
    "VolumeOptions" => InPlace(&mut m.volume),
});

go_struct!(BindOptionsSpec, "a BindOptions object", |b| {
    "ReadOnlyNonRecursive" => InPlace(&mut b.read_only_non_recursive),
});

go_struct!(VolumeOptionsSpec, "a VolumeOptions object", |v| {
    "Subpath" => InPlace(&mut v.subpath),
    "DriverConfig" => InPlace(&mut v.driver),
});

go_struct!(DriverSpec, "a DriverConfig object", |d| {
    "Name" => InPlace(&mut d.name),
    "Options" => InPlace(&mut d.options),
});

go_struct!(DeviceSpec, "a device object", |d| {
    "PathOnHost" => InPlace(&mut d.path_on_host),
    "PathInContainer" => InPlace(&mut d.path_in_container),
});

go_struct!(DeviceRequestSpec, "a device request object", |r| {
    "Driver" => InPlace(&mut r.driver),
    "DeviceIDs" => InPlace(&mut r.device_ids),
    "Capabilities" => InPlace(&mut r.capabilities),
});

/// Decodes a whole body into `T` as Go's `json.Decoder.Decode` would, refusing content
/// after the first value (engines differ on it: some refuse, some ignore it).
pub(super) fn decode_body<T: GoDecode>(body: &[u8], into: &mut T) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    into.decode(&mut de)
        .map_err(|e| format!("the body is not what the engine would read: {e}"))?;
    de.end()
        .map_err(|_| "content after the JSON body (engines differ on it)".to_string())
}
