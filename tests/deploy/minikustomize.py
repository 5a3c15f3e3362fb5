"""A small kustomize build for the features deploy/ uses, for machines without kustomize/kubectl.

This is a SUBSTITUTE, not kustomize. It implements, following kustomize v5's documented behaviour:
`resources` (files and directories holding a kustomization), `components`, `namespace` (namespaced
kinds only), `labels` (pairs, metadata only: includeSelectors/includeTemplates false), `images`
(newName/newTag/digest), `configMapGenerator` (files/literals, with a content-hash
suffix like kustomize's and the rewriting of references to the generated name) and `patches` with RFC 6902 JSON
patches (inline or from a file, target by group/version/kind/name). Anything else in a
kustomization makes it fail loudly instead of silently building something different.
When a real kustomize (or kubectl) is on PATH, test_kubernetes.py compares this with it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KEYS = {
    "apiVersion", "kind", "resources", "components", "namespace", "labels", "images",
    "configMapGenerator", "patches",
}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "PriorityClass", "ClusterTriggerAuthentication", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


class KustomizeError(Exception):
    pass


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise KustomizeError(f"{directory}: no kustomization file")


def _load_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def configmap_hash(configmap: dict) -> str:
    """A content hash in kustomize's style (sha256 of the JSON of {data, kind, name}, 10 characters).

    Not bit-for-bit kustomize's suffix (the comparison with the real build ignores suffixes): what
    matters is the property, a new name whenever config.yaml changes, so the Deployment rolls.
    """
    encoded: dict[str, Any] = {"kind": "ConfigMap", "name": configmap["metadata"]["name"],
                               "data": configmap.get("data", {})}
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's encoding/json escapes these three for HTML safety.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _gvk(obj: dict) -> tuple[str, str, str]:
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    return group, version, obj.get("kind", "")


def _matches(obj: dict, target: dict) -> bool:
    group, version, kind = _gvk(obj)
    wanted = {"group": group, "version": version, "kind": kind, "name": obj["metadata"].get("name"),
              "namespace": obj["metadata"].get("namespace")}
    for key, value in target.items():
        if key not in wanted:
            raise KustomizeError(f"unsupported patch target field {key!r}")
        if wanted[key] != value:
            return False
    return True


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _json_patch(doc: dict, operations: list[dict]) -> None:
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if isinstance(node, list):
                node[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in node:
                    raise KustomizeError(f"replace of missing {op['path']}")
                node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(node, list):
                del node[int(last)]
            else:
                if last not in node:
                    raise KustomizeError(f"remove of missing {op['path']}")
                del node[last]
        else:
            raise KustomizeError(f"unsupported JSON patch op {kind!r}")


def _apply(directory: Path, spec: dict, objects: list[dict], generated: dict[str, str]) -> list[dict]:
    """One kustomization or component: its resources and components, then its own transformations."""
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    own: list[dict] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            own.extend(build(path, _generated=generated))
        else:
            own.extend(_load_docs(path))
    objects = objects + own
    for entry in spec.get("components", []):
        component_dir = (directory / entry).resolve()
        component = yaml.safe_load(_kustomization_file(component_dir).read_text(encoding="utf-8"))
        if component.get("kind") != "Component":
            raise KustomizeError(f"{component_dir} is not a Component")
        objects = _apply(component_dir, component, objects, generated)

    for generator in spec.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for item in generator.get("files", []):
            key, _, source = item.partition("=") if "=" in item else (Path(item).name, "", item)
            data[key] = (directory / source).read_text(encoding="utf-8")
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        unknown = set(generator) - {"name", "files", "literals"}
        if unknown:
            raise KustomizeError(f"unsupported configMapGenerator fields {sorted(unknown)}")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": generator["name"]}, "data": data, "__generated__": True})

    for patch in spec.get("patches", []):
        text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text(encoding="utf-8")
        operations = yaml.safe_load(text)
        if not isinstance(operations, list):
            raise KustomizeError("only RFC 6902 JSON patches are supported")
        hits = [o for o in objects if _matches(o, patch.get("target", {}))]
        if not hits:
            raise KustomizeError(f"patch target {patch.get('target')} matched nothing")
        for obj in hits:
            _json_patch(obj, operations)

    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for label_set in spec.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise KustomizeError("labels with includeSelectors/includeTemplates are not supported")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    for image in spec.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                name, tag = _split_image(container["image"])
                if name != image["name"]:
                    continue
                new = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{new}@{image['digest']}"
                else:
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{new}:{new_tag}" if new_tag else new
    return objects


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return image.rsplit(":", 1)[0], image.rsplit(":", 1)[1]
    return image, None


def _pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return spec
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    return template.get("spec") if template else None


def _containers(obj: dict) -> list[dict]:
    pod = _pod_spec(obj)
    if not pod:
        return []
    return pod.get("containers", []) + pod.get("initContainers", [])


def _rename_configmaps(objects: list[dict], renames: dict[str, str]) -> None:
    for obj in objects:
        pod = _pod_spec(obj)
        if not pod:
            continue
        for volume in pod.get("volumes", []):
            if "configMap" in volume and volume["configMap"].get("name") in renames:
                volume["configMap"]["name"] = renames[volume["configMap"]["name"]]
            for source in volume.get("projected", {}).get("sources", []):
                if "configMap" in source and source["configMap"].get("name") in renames:
                    source["configMap"]["name"] = renames[source["configMap"]["name"]]
        for container in _containers(obj):
            for env_from in container.get("envFrom", []):
                ref = env_from.get("configMapRef")
                if ref and ref.get("name") in renames:
                    ref["name"] = renames[ref["name"]]
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref and ref.get("name") in renames:
                    ref["name"] = renames[ref["name"]]


def build(directory: Path, _generated: dict[str, str] | None = None) -> list[dict]:
    """Objects of `kustomize build directory`, in no particular order."""
    directory = Path(directory).resolve()
    top = _generated is None
    generated: dict[str, str] = {} if top else _generated
    spec = yaml.safe_load(_kustomization_file(directory).read_text(encoding="utf-8"))
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{directory} is a {spec.get('kind')}, not a Kustomization")
    objects = _apply(directory, spec, [], generated)
    if top:
        renames = {}
        for obj in objects:
            if obj.pop("__generated__", False):
                old = obj["metadata"]["name"]
                obj["metadata"]["name"] = f"{old}-{configmap_hash(obj)}"
                renames[old] = obj["metadata"]["name"]
        _rename_configmaps(objects, renames)
    return objects
