"""Payload checks at enqueue: a task's payload model (a pydantic model, or one built from the handler's signature),
the ``ValidationError`` naming each bad ``payload.<field>``, and the model's JSON Schema."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pydantic
import pydantic_core
import typing_extensions
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from tickr.core.errors import ValidationError
from tickr.core.factory import unserializable_path

_EMPTY = inspect.Parameter.empty


class PayloadSpec:
    """How one task's payload is checked: ``validate`` at enqueue, ``json_schema`` to publish the check.

    A payload is validated as the JSON it is stored as. A model's own config decides how strict it is;
    a model built from a signature is strict (``"5"`` is not an ``int``, but an ISO string is a ``datetime``,
    as in JSON), because the handler is called with the JSON values themselves.
    """

    __slots__ = ("_accepts_any", "_adapter", "_defaults", "_strict", "_title")

    def __init__(
        self,
        adapter: pydantic.TypeAdapter[Any],
        *,
        strict: bool = False,
        title: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self._adapter = adapter
        self._accepts_any = False  # any JSON object: nothing to check past what the encoder checks
        self._strict = strict
        self._title = title
        self._defaults = defaults or {}

    def validate(self, payload: dict[str, Any], job_type: str) -> None:
        """``ValidationError`` whose ``errors`` map ``payload.<field>`` to a message unless ``payload`` fits."""
        if self._accepts_any:
            return  # a dict (build_job checked that): skip encoding it just to hear it is one
        strict = self._strict or None
        try:
            try:
                self._adapter.validate_json(pydantic_core.to_json(payload), strict=strict)
            except pydantic.ValidationError as exc:
                if exc.errors()[0]["type"] != "json_invalid":
                    raise
                # nested deeper than pydantic's JSON parser goes (~200 levels; the store takes 254)
                self._adapter.validate_python(payload, strict=strict)
        except pydantic.ValidationError as exc:
            errors = field_errors(exc)
            details = "; ".join(f"{name}: {message}" for name, message in errors.items())
            raise ValidationError(f"invalid {job_type} payload: {details}", errors) from None

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload (parts pydantic cannot describe accept anything)."""
        schema = self._adapter.json_schema(schema_generator=_LenientSchema)
        if self._title is not None:
            schema["title"] = self._title
        for name, default in self._defaults.items():
            schema["properties"][name].setdefault("default", default)
        return schema


ANY_OBJECT = PayloadSpec(pydantic.TypeAdapter(dict[str, Any]))
ANY_OBJECT._accepts_any = True
"""Any JSON object: the check of a raw-payload handler that declares no model."""


class _LenientSchema(GenerateJsonSchema):
    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> JsonSchemaValue:
        return {}


def field_errors(exc: pydantic.ValidationError) -> dict[str, str]:
    """``{"payload.url": "Field required", ...}``: dotted paths under ``payload``, messages joined per field."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        name = ".".join(["payload", *(str(part) for part in error["loc"])])
        message = str(error["msg"]).removeprefix("Value error, ")
        errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors


def from_model(model: type[pydantic.BaseModel]) -> PayloadSpec:
    """The check of an explicit payload model (``@app.task(payload=Model)``, the built-in types)."""
    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        raise TypeError(f"payload must be a pydantic BaseModel subclass, not {model!r}")
    return PayloadSpec(pydantic.TypeAdapter(model))


def from_signature(fn: Callable[..., Any], signature: inspect.Signature, title: str) -> PayloadSpec:
    """The check a handler's parameters imply: a closed JSON object with one field per parameter.

    Unannotated parameters accept any JSON, ``*args: T`` is a list of ``T`` under its name, ``**kwargs: T``
    admits other keys whose values are ``T``; a parameter defaulting to ``None`` also accepts null. An
    annotation that cannot be resolved or that pydantic cannot check accepts anything.
    """
    hints = _annotations(fn, signature)
    fields: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    extra: Any = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, Any)
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = annotation
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            fields[param.name] = typing_extensions.NotRequired[list[annotation]]  # type: ignore[valid-type]
            defaults[param.name] = []
        elif param.default is _EMPTY:
            fields[param.name] = annotation
        else:
            if param.default is None:
                annotation = typing.Optional[annotation]  # noqa: UP045 (works for any annotation)
            fields[param.name] = typing_extensions.NotRequired[annotation]
            if unserializable_path(param.default) is None:
                defaults[param.name] = param.default
    try:
        adapter = _typed_dict(title, fields, extra)
    except pydantic.PydanticUserError:  # some annotation pydantic cannot check: those accept anything
        fields = {name: _checkable(annotation) for name, annotation in fields.items()}
        adapter = _typed_dict(title, fields, None if extra is None else _checkable(extra))
    return PayloadSpec(adapter, strict=True, title=title, defaults=defaults)


def _typed_dict(title: str, fields: dict[str, Any], extra: Any) -> pydantic.TypeAdapter[Any]:
    closing: dict[str, Any] = {"closed": True} if extra is None else {"extra_items": extra}
    return pydantic.TypeAdapter(typing_extensions.TypedDict(title, fields, **closing))  # type: ignore[operator]


def _checkable(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing_extensions.NotRequired:
        return typing_extensions.NotRequired[_checkable(typing.get_args(annotation)[0])]
    try:
        pydantic.TypeAdapter(annotation)
    except pydantic.PydanticUserError:
        return Any
    return annotation


def _annotations(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Each annotated parameter's type, strings evaluated; ``Any`` for those that cannot be resolved."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # a name only imported under TYPE_CHECKING, say: resolve parameter by parameter
        namespace = getattr(inspect.unwrap(fn), "__globals__", {})
        hints: dict[str, Any] = {}
        for param in signature.parameters.values():
            annotation = param.annotation
            if isinstance(annotation, str):
                try:
                    annotation = eval(annotation, namespace)  # what get_type_hints does, one at a time
                except Exception:
                    annotation = Any
            if annotation is not _EMPTY:
                hints[param.name] = annotation
        return hints
