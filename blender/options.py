"""The job options as Blender properties, derived from their one declaration, and which
value a job gets.

backend/bridge/options.py declares each option (name, type, default, range, words);
here they become the operators' properties, the panel's settings and the preferences'
defaults (`default_<name>`), and `resolve` decides, in one place, which value applies:
an operator argument that was given, then the panel's value (unless the panel says "use
the preferences' defaults"), then the preferences' default. The model family is chosen
beside the source, so it comes from the operator, else the panel (always), and a text
job always goes to a family that reads text (Shap-E). The preset (Raw Surface, Clean,
Game Asset, Custom) then sets the mesh stage's options, except those given to the
operator: it comes from the operator, else the panel (always: the raw surface is one
click away, whatever "use the preferences' defaults" says), and Custom leaves the
options as resolved.
"""

from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ..backend.bridge.options import (
    ALL_OPTIONS,
    ASSET_OPTIONS,
    CUSTOM_PRESET,
    FAMILIES,
    FAMILIES_BY_NAME,
    FAMILY_OPTION,
    JOB_OPTIONS,
    OBJECT_OPTIONS,
    PRESET_OPTION,
    PRESETS_BY_NAME,
    apply_preset,
)
from ..backend.bridge.settings import GenerateSettings
from ..backend.families.registry import VIEWS

PREFERENCE_PREFIX = "default_"


def blender_property(option, remembered: bool = True):
    """A bpy property (deferred) for one declared option.

    remembered=False (operators): Blender must not carry a value over from the last
    call, or an option left out would silently take the previous call's value instead
    of the panel's or the preferences'. Operators also get only soft limits: Blender
    clamps a value beyond a hard limit without a word (texture_size=9000 would bake
    8192), where the backend's check names the rule instead.
    """
    common = {"name": option.label, "description": option.description, "default": option.default}
    if not remembered:
        common["options"] = {"SKIP_SAVE"}
    if option.kind is bool:
        return BoolProperty(**common)
    if option.kind is str:
        return EnumProperty(items=list(option.choices), **common)
    limits = {}
    low = option.soft_minimum if option.soft_minimum is not None else option.minimum
    if option.zero_means:
        low = 0  # "0: keep all" is a value too; 1 to 3 faces get the backend's clear error
    hard = "" if remembered else "soft_"  # the panel's and the preferences' fields keep hard limits
    if low is not None:
        limits[hard + "min"] = low
    if option.maximum is not None:
        limits[hard + "max"] = option.maximum
    if option.soft_maximum is not None:
        limits["soft_max"] = option.soft_maximum
    if option.kind is int:
        return IntProperty(**common, **limits)
    return FloatProperty(**common, **limits)


def annotations(prefix: str = "", remembered: bool = True, with_preset: bool = False) -> dict:
    """Property annotations for every option, for a class body's `__annotations__`
    (the preset too for the panel and the operators; the preferences hold none)."""
    chosen = ALL_OPTIONS + ((PRESET_OPTION,) if with_preset else ())
    return {prefix + option.name: blender_property(option, remembered) for option in chosen}


def views_annotations() -> dict:
    """The panel's properties for the views job's options (registry.VIEWS) that no
    family shares (a family reusing one, as One-2-3-45 does, has it in ALL_OPTIONS)."""
    taken = {option.name for option in ALL_OPTIONS}
    return {option.name: blender_property(option) for option in VIEWS.options if option.name not in taken}


def resolve(operator=None, panel=None, preferences=None, task: str = "image") -> dict:
    """name -> value for every option: operator argument, then panel, then preferences;
    the family as chosen for a job starting from `task`'s input (see the module's words)."""
    values = {}
    for option in ALL_OPTIONS:
        if operator is not None and operator.properties.is_property_set(option.name):
            values[option.name] = getattr(operator, option.name)
        elif panel is not None and (option is FAMILY_OPTION or not panel.use_defaults):
            values[option.name] = getattr(panel, option.name)
        elif preferences is not None:
            values[option.name] = getattr(preferences, PREFERENCE_PREFIX + option.name)
        elif operator is not None:
            values[option.name] = getattr(operator, option.name)  # its declared default
        else:
            values[option.name] = option.default
    if not (operator is not None and operator.properties.is_property_set(FAMILY_OPTION.name)):
        values[FAMILY_OPTION.name] = family_for(values[FAMILY_OPTION.name], task)
    given = {o.name for o in ASSET_OPTIONS if operator is not None and operator.properties.is_property_set(o.name)}
    preset = chosen_preset(operator, panel)
    return {**apply_preset(values, preset, given), PRESET_OPTION.name: preset}


def chosen_preset(operator=None, panel=None) -> str:
    if operator is not None and operator.properties.is_property_set(PRESET_OPTION.name):
        return getattr(operator, PRESET_OPTION.name)
    if panel is not None:
        return getattr(panel, PRESET_OPTION.name)
    return PRESET_OPTION.default


def family_for(chosen: str, task: str) -> str:
    """The chosen family, or, when it cannot start from this input (a prompt with TripoSR
    chosen for images), the first family that can."""
    if task in FAMILIES_BY_NAME[chosen].tasks:
        return chosen
    return next(family.identifier for family in FAMILIES if task in family.tasks)


def settings_of(values: dict) -> GenerateSettings:
    """The backend's settings from resolved values."""
    job = {}
    for option in JOB_OPTIONS:
        value = values[option.name]
        # Blender's float properties are single precision: round off the float32 noise
        # (0.8500000238) so stored settings compare equal across runs.
        job[option.name] = round(value, 5) if option.kind is float else value
    return GenerateSettings(**job)


def object_values(values: dict) -> dict:
    """The options that shape the Blender object (shading, placement)."""
    return {option.name: values[option.name] for option in OBJECT_OPTIONS}


def draw(layout, holder, prefix: str = "", options=ALL_OPTIONS, family: str | None = None, task: str | None = None) -> None:
    """One row per option of `options`, in declaration order: those a job of `family`
    starting from `task` uses (the family itself is drawn beside the source), or, without
    a family, each family's under its name, then those of every family (the preferences)."""
    if family is not None:
        for option in options:
            if option is not FAMILY_OPTION and option.applies_to(family, task):
                layout.prop(holder, prefix + option.name)
        return
    for chosen in FAMILIES:
        layout.label(text=chosen.label)
        for option in options:
            if chosen.identifier in option.families:
                layout.prop(holder, prefix + option.name)
    layout.label(text="Every Model")
    for option in options:
        if not option.families:
            layout.prop(holder, prefix + option.name)


def preset_summary(preset: str) -> str:
    """What a preset makes, in a few words (the panel shows it under the preset)."""
    chosen = PRESETS_BY_NAME.get(preset)
    return chosen.description if chosen is not None else ""


def shows_asset_options(holder) -> bool:
    return getattr(holder, PRESET_OPTION.name, CUSTOM_PRESET) == CUSTOM_PRESET
