"""`intent new slice NAME`: a slice that works from the first minute (an aggregate in the
decider shape with a create and a rename command, their events, the wiring table, a test
written with the given/when/then kit), registered in the application's `slices=[...]`."""

from __future__ import annotations

from tools.scaffold.files import Plan, render
from tools.scaffold.names import SliceNames
from tools.scaffold.project import Project
from tools.scaffold.wiring import register


def first_party(project: Project) -> set[str]:
    """The project's own top-level packages and modules (what isort calls first party)."""
    names = {path.stem for path in project.root.glob("*.py")}
    names |= {path.parent.name for path in project.root.glob("*/__init__.py")}
    return names | {project.slices.split(".")[0], project.projections.split(".")[0]}


def plan_slice(project: Project, names: SliceNames) -> Plan:
    """Every file of the slice and the application module's new source; raises
    WiringError when the application is not composed in a shape it can edit."""
    folder = project.package_dir(project.slices)
    values = {**names.mapping(), "package": project.slices}
    plan = Plan()
    if not (folder / "__init__.py").exists():
        plan.create[folder / "__init__.py"] = f'"""The slices of {project.root.name}."""\n'
    package = folder / names.slice
    plan.create[package / "__init__.py"] = render("slice/__init__.py.tmpl", values)
    plan.create[package / "commands.py"] = render("slice/commands.py.tmpl", values)
    plan.create[package / "events.py"] = render("slice/events.py.tmpl", values)
    plan.create[package / f"{names.module}.py"] = render("slice/aggregate.py.tmpl", values)
    plan.create[project.test_file("unit", names.slice)] = render("slice/test.py.tmpl", values)
    plan.absent += [package, folder / f"{names.slice}.py"]
    plan.refuse_existing()  # before the registration, which would refuse a second run too
    app = project.app_file
    plan.rewrite[app] = register(
        app.read_text(encoding="utf-8"), attribute=project.app_attribute, keyword="slices",
        module=project.slices, name=names.slice, first_party=first_party(project))
    return plan


def next_steps(project: Project, names: SliceNames) -> list[str]:
    package = project.shown(project.package_dir(project.slices) / names.slice)
    test = project.shown(project.test_file("unit", names.slice))
    return [
        f"make the commands and events yours: {package}/commands.py, {package}/events.py",
        f"decide and evolve in {package}/{names.module}.py; names, versions and roles in "
        f"{package}/__init__.py",
        f"run its tests: .venv/bin/pytest {test}",
        "then ./run generate: the allow-list, the edge function's schemas, and the schema "
        "lock, which from then on refuses an incompatible event change without a new version",
        f"add a read model: ./run new projection {names.slice}_view --slice {names.slice}",
    ]
