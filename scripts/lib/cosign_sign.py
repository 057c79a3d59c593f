#!/usr/bin/env python3
"""A cosign key-pair signer for tests, written from cosign's SIGNATURE_SPEC (tag-based
discovery, the simplesigning payload, the signature annotation) on Python's `cryptography`:
an implementation that is not dockwarden's verifier, so that the tests show the verifier
reads what a signer following the spec writes.

    cosign_sign.py keygen PREFIX
        writes PREFIX.pub (PEM SubjectPublicKeyInfo, as `cosign generate-key-pair` writes
        cosign.pub) and PREFIX.key (an UNENCRYPTED PKCS#8 PEM private key: a test key;
        cosign's own cosign.key is scrypt+secretbox encrypted, which no test needs)
    cosign_sign.py sign --key PREFIX.key [--variant V] [--media-types oci|docker] [--append]
                        REGISTRY/REPO@sha256:HEX
        pushes the signature manifest tagged sha256-HEX.sig to REGISTRY/REPO over plain HTTP
        (the test registries listen on loopback), as `cosign sign --key` (v2, or v3 with
        --new-bundle-format=false) does
    cosign_sign.py vector --key PREFIX.key [--variant V] [--media-types ...] REF
        prints the manifest and its blobs as JSON instead of pushing (fixed test vectors)
    cosign_sign.py replay FROM_REF TO_REF
        copies FROM_REF's signature manifest (and its blobs) under TO_REF's signature tag:
        what an attacker with push access, but not the key, does to pass a signature of one
        image off as another's (the payload still names FROM_REF's digest)
    cosign_sign.py delete REGISTRY/REPO@sha256:HEX
        deletes the .sig manifest (needs a registry with deletes enabled)

Variants (adversarial ones are what an attacker who controls the registry, not the key, or a
confused signer could produce):
    good              one simplesigning layer, signed over the exact payload bytes
    high-s            the same, with the signature's S in its high form (valid; Go accepts)
    wrong-digest      a valid signature over a payload that names another image's digest
    wrong-type        a valid signature over a payload whose critical.type is not cosign's
    garbage-payload   a valid signature over bytes that are not JSON
    wrong-media-type  the good layer under another media type
    other-bytes       the annotation signs other bytes than the layer's payload
    no-annotation     the good layer without its signature annotation
    bad-base64        the annotation is not base64
    p1363             the signature as raw r||s (64 bytes), not ASN.1 DER
    size-mismatch     the descriptor's size is one more than the payload's
    several           an other-bytes layer, a wrong-media-type layer, then the good one
    bundle            a .sig manifest whose layer is a Sigstore bundle (v3 media type)
    v3-referrer       no .sig tag: a cosign v3 style referrer (OCI 1.1 subject, bundle
                      artifactType) pushed by digest, and the referrers tag schema's index
                      tagged sha256-HEX that lists it (registries without the referrers API)
    index             the .sig tag holds an image index, not a manifest
"""

import argparse
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
OTHER_DIGEST = "sha256:" + "0" * 63 + "1"

VARIANTS = [
    "good", "high-s", "wrong-digest", "wrong-type", "garbage-payload", "wrong-media-type",
    "other-bytes", "no-annotation", "bad-base64", "p1363", "size-mismatch", "several",
    "bundle", "v3-referrer", "index",
]


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canonical(obj):
    # Go's json.Marshal: no spaces, fields in struct order (dicts keep insertion order).
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_ref(ref):
    if "@" not in ref:
        sys.exit(f"{ref}: sign by digest (REGISTRY/REPO@sha256:HEX)")
    name, digest = ref.split("@", 1)
    if not digest.startswith("sha256:") or len(digest) != 71:
        sys.exit(f"{ref}: not a sha256 digest")
    registry, _, repo = name.partition("/")
    if not repo:
        sys.exit(f"{ref}: no repository")
    return registry, repo, digest


def payload_for(registry, repo, digest, kind=COSIGN_TYPE):
    return canonical({
        "critical": {
            "identity": {"docker-reference": f"{registry}/{repo}"},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": None,
    })


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign(key, data, high_s=False):
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    if high_s:
        r, s = decode_dss_signature(der)
        if s <= P256_N // 2:
            s = P256_N - s
        der = encode_dss_signature(r, s)
    return der


def b64(b):
    return base64.b64encode(b).decode()


def layer(payload, signature, media_type=SIMPLESIGNING, size=None, annotate=True):
    d = {"mediaType": media_type, "size": len(payload) if size is None else size,
         "digest": sha256(payload)}
    if annotate:
        d["annotations"] = {SIG_ANNOTATION: signature}
    return d


def build(key, ref, variant, media_types):
    """Returns (things to push: list of (kind, name, media type, bytes)), the .sig manifest
    last unless the variant pushes something else."""
    registry, repo, digest = parse_ref(ref)
    good_payload = payload_for(registry, repo, digest)
    good_sig = b64(sign(key, good_payload))
    blobs = []
    layers = []
    if variant in ("good", "high-s"):
        sig = b64(sign(key, good_payload, high_s=variant == "high-s"))
        layers.append((good_payload, layer(good_payload, sig)))
    elif variant == "wrong-digest":
        p = payload_for(registry, repo, OTHER_DIGEST)
        layers.append((p, layer(p, b64(sign(key, p)))))
    elif variant == "wrong-type":
        p = payload_for(registry, repo, digest, kind="atomic container signature")
        layers.append((p, layer(p, b64(sign(key, p)))))
    elif variant == "garbage-payload":
        p = b"this is not json, but it is signed\n"
        layers.append((p, layer(p, b64(sign(key, p)))))
    elif variant == "wrong-media-type":
        layers.append((good_payload, layer(good_payload, good_sig,
                                           media_type="application/vnd.oci.image.layer.v1.tar")))
    elif variant == "other-bytes":
        other = payload_for(registry, repo, digest) + b" "
        layers.append((good_payload, layer(good_payload, b64(sign(key, other)))))
    elif variant == "no-annotation":
        layers.append((good_payload, layer(good_payload, good_sig, annotate=False)))
    elif variant == "bad-base64":
        layers.append((good_payload, layer(good_payload, "%%% not base64 %%%")))
    elif variant == "p1363":
        r, s = decode_dss_signature(sign(key, good_payload))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        layers.append((good_payload, layer(good_payload, b64(raw))))
    elif variant == "size-mismatch":
        layers.append((good_payload, layer(good_payload, good_sig, size=len(good_payload) + 1)))
    elif variant == "several":
        other = good_payload + b" "
        layers.append((good_payload, layer(good_payload, b64(sign(key, other)))))
        tar = b"not a signature"
        layers.append((tar, layer(tar, good_sig, media_type="application/vnd.oci.image.layer.v1.tar")))
        layers.append((good_payload, layer(good_payload, good_sig)))
    elif variant == "bundle":
        bundle = canonical({"mediaType": BUNDLE, "verificationMaterial": {}, "dsseEnvelope": {}})
        layers.append((bundle, {"mediaType": BUNDLE, "size": len(bundle), "digest": sha256(bundle)}))
    elif variant in ("v3-referrer", "index"):
        pass
    else:
        sys.exit(f"unknown variant {variant}")

    tag = digest.replace(":", "-") + ".sig"
    if variant == "v3-referrer":
        bundle = canonical({"mediaType": BUNDLE, "verificationMaterial": {}, "dsseEnvelope": {}})
        empty = b"{}"
        blobs += [bundle, empty]
        referrer = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                       "digest": sha256(empty)},
            "layers": [{"mediaType": BUNDLE, "size": len(bundle), "digest": sha256(bundle)}],
            "subject": {"mediaType": OCI_MANIFEST, "size": 0, "digest": digest},
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
        })
        index = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "size": len(referrer),
                           "digest": sha256(referrer), "artifactType": BUNDLE}],
        })
        return registry, repo, blobs, [
            (sha256(referrer), OCI_MANIFEST, referrer),
            (digest.replace(":", "-"), OCI_INDEX, index),
        ]
    if variant == "index":
        # A .sig tag that holds an index (of one good signature manifest).
        inner_blobs, inner = manifest_of([(good_payload, layer(good_payload, good_sig))], media_types)
        blobs += inner_blobs
        index = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "size": len(inner), "digest": sha256(inner)}],
        })
        return registry, repo, blobs, [
            (sha256(inner), OCI_MANIFEST, inner),
            (tag, OCI_INDEX, index),
        ]
    more_blobs, manifest = manifest_of(layers, media_types)
    blobs += more_blobs
    mt = DOCKER_MANIFEST if media_types == "docker" else OCI_MANIFEST
    return registry, repo, blobs, [(tag, mt, manifest)]


def manifest_of(layers, media_types, existing=None):
    blobs = [p for p, _ in layers]
    descs = (existing or []) + [d for _, d in layers]
    config = canonical({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
        "config": {},
    })
    blobs.append(config)
    docker = media_types == "docker"
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "size": len(config),
                   "digest": sha256(config)},
        "layers": descs,
    })
    return blobs, manifest


# --- the registry's HTTP API (distribution spec), plain HTTP on loopback -----------------
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def push_blob(registry, repo, data):
    d = sha256(data)
    base = f"http://{registry}/v2/{repo}"
    status, _, _ = request("HEAD", f"{base}/blobs/{d}")
    if status == 200:
        return
    status, headers, body = request("POST", f"{base}/blobs/uploads/", data=b"")
    if status != 202:
        sys.exit(f"starting an upload to {registry}/{repo}: HTTP {status} {body[:200]!r}")
    location = headers.get("Location") or headers.get("location")
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    status, _, body = request("PUT", f"{location}{sep}digest={d}", data=data,
                              headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        sys.exit(f"uploading blob {d}: HTTP {status} {body[:200]!r}")


def push_manifest(registry, repo, reference, media_type, data):
    url = f"http://{registry}/v2/{repo}/manifests/{reference}"
    status, _, body = request("PUT", url, data=data, headers={"Content-Type": media_type})
    if status != 201:
        sys.exit(f"pushing manifest {reference} to {registry}/{repo}: HTTP {status} {body[:300]!r}")


def existing_layers(registry, repo, tag):
    url = f"http://{registry}/v2/{repo}/manifests/{tag}"
    status, _, body = request("GET", url, headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    if status == 404:
        return []
    if status != 200:
        sys.exit(f"reading {tag}: HTTP {status}")
    return json.loads(body).get("layers", [])


def cmd_keygen(args):
    key = ec.generate_private_key(ec.SECP256R1())
    with open(args.prefix + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(args.prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def cmd_sign(args, push=True):
    key = load_key(args.key)
    registry, repo, blobs, manifests = build(key, args.ref, args.variant, args.media_types)
    if args.append and push:
        # Like cosign: a second signature of the same digest adds a layer to the manifest
        # already there (the layers' blobs are in the registry or pushed below).
        tag, mt, _ = manifests[-1]
        old = existing_layers(registry, repo, tag)
        new = json.loads(manifests[-1][2])["layers"]
        config_blobs, manifest = manifest_of([], args.media_types, existing=old + new)
        blobs += config_blobs
        manifests[-1] = (tag, mt, manifest)
    if not push:
        out = {
            "manifests": [{"reference": r, "mediaType": mt, "body": b.decode()} for r, mt, b in manifests],
            "blobs": {sha256(b): base64.b64encode(b).decode() for b in blobs},
        }
        print(json.dumps(out, indent=1))
        return
    for b in blobs:
        push_blob(registry, repo, b)
    for reference, mt, body in manifests:
        push_manifest(registry, repo, reference, mt, body)


def cmd_replay(args):
    registry, frepo, fdigest = parse_ref(args.from_ref)
    tregistry, trepo, tdigest = parse_ref(args.to_ref)
    if tregistry != registry:
        sys.exit("replay within one registry")
    accept = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
    ftag = fdigest.replace(":", "-") + ".sig"
    status, headers, body = request("GET", f"http://{registry}/v2/{frepo}/manifests/{ftag}", headers=accept)
    if status != 200:
        sys.exit(f"{ftag}: HTTP {status}")
    m = json.loads(body)
    for d in [m["config"]] + m["layers"]:
        status, _, blob = request("GET", f"http://{registry}/v2/{frepo}/blobs/{d['digest']}")
        if status != 200:
            sys.exit(f"blob {d['digest']}: HTTP {status}")
        push_blob(registry, trepo, blob)
    ttag = tdigest.replace(":", "-") + ".sig"
    push_manifest(registry, trepo, ttag, m.get("mediaType", OCI_MANIFEST), body)


def cmd_delete(args):
    registry, repo, digest = parse_ref(args.ref)
    tag = digest.replace(":", "-") + ".sig"
    accept = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}"}
    status, headers, _ = request("HEAD", f"http://{registry}/v2/{repo}/manifests/{tag}", headers=accept)
    if status != 200:
        sys.exit(f"{tag}: HTTP {status}")
    d = headers.get("Docker-Content-Digest")
    status, _, body = request("DELETE", f"http://{registry}/v2/{repo}/manifests/{d}")
    if status != 202:
        sys.exit(f"deleting {tag}: HTTP {status} {body[:200]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("prefix")
    for name in ("sign", "vector"):
        s = sub.add_parser(name)
        s.add_argument("--key", required=True)
        s.add_argument("--variant", default="good", choices=VARIANTS)
        s.add_argument("--media-types", default="oci", choices=["oci", "docker"])
        s.add_argument("--append", action="store_true")
        s.add_argument("ref")
    r = sub.add_parser("replay")
    r.add_argument("from_ref")
    r.add_argument("to_ref")
    d = sub.add_parser("delete")
    d.add_argument("ref")
    args = ap.parse_args()
    if args.cmd == "keygen":
        cmd_keygen(args)
    elif args.cmd == "sign":
        cmd_sign(args)
    elif args.cmd == "vector":
        cmd_sign(args, push=False)
    elif args.cmd == "replay":
        cmd_replay(args)
    else:
        cmd_delete(args)


if __name__ == "__main__":
    main()
