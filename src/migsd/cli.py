"""The ``migsd`` command line."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .errors import MigsdError, ScenarioError


def _parse_set(text: str):
    if "=" not in text:
        raise MigsdError(f"--set '{text}': write NAME=VALUE, e.g. --set 'IOM funding=1e9'")
    name, value = text.split("=", 1)
    try:
        number = float(value)
    except ValueError as error:
        raise MigsdError(f"--set '{text}': '{value}' is not a number") from error
    return name.strip(), number


def _cmd_run(args) -> int:
    import numpy as np

    from .indicators import YIELD_VARIABLE
    from .model import load_model
    from .outputs import to_netcdf
    from .runs import run_scenarios

    from .outputs import check_output_path

    # every output checked before the run: a run is not thrown away for a typo in a file name
    if args.out:
        check_output_path(args.out, overwrite=args.overwrite)
    if args.plot:
        check_output_path(args.plot, overwrite=args.overwrite, option="--plot", example="headline.png")
    model = load_model(args.model)
    params = dict(_parse_set(item) for item in args.set or [])
    options = {"params": params, "engine": args.engine, "allow_nonfinite": args.keep_nonfinite}
    for key in ("final_time", "time_step"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    try:
        dataset = run_scenarios(args.scenario or ["status_quo"], model, progress=not args.quiet, **options)
    except ScenarioError as error:
        if not str(error).startswith("params=: "):
            raise
        # --set values reach the model as params=; say where the user typed them
        raise type(error)("--set: " + str(error).removeprefix("params=: ")) from error
    for scenario in dataset["scenario"].values:
        title = str(dataset["scenario_title"].sel(scenario=scenario).values)
        if YIELD_VARIABLE not in dataset:
            reason = ("the model has no region North" if "North" not in model.subscripts.get("Region", ["North"])
                      else "the run ends before the yield year's reference year")
            print(f"{scenario}: done ({reason})  [{title}]")
            continue
        year = float(dataset[YIELD_VARIABLE].sel(scenario=scenario))
        shown = "never (within the run)" if math.isnan(year) else f"{year:.0f}"
        print(f"{scenario}: Northern restrictiveness yields in {shown}  [{title}]")
    if YIELD_VARIABLE in dataset:
        print(f"definition: {dataset[YIELD_VARIABLE].attrs['definition']}")
    if args.out:
        to_netcdf(dataset, args.out, overwrite=args.overwrite)
        print(f"wrote {args.out}")
    if args.plot:
        from .plotting import headline_figure

        headline_figure(dataset, args.plot)
        print(f"wrote {args.plot}")
    broken = [name for name, values in dataset.data_vars.items()
              if name != YIELD_VARIABLE and values.dtype.kind == "f" and not bool(np.isfinite(values).all())]
    if broken:  # kept on request (--keep-nonfinite), never a success
        print(f"migsd: error: the run turned non-finite in {len(broken)} variable(s) (kept for diagnosis, "
              f"--keep-nonfinite)", file=sys.stderr)
        return 1
    return 0


def _cmd_scenarios(args) -> int:
    from .scenarios import list_scenarios

    scenarios = list_scenarios()
    width = max(len(s.name) for s in scenarios)
    for scenario in scenarios:
        print(f"{scenario.name:<{width}}  {scenario.title}")
    return 0


def _cmd_params(args) -> int:
    from .model import load_model

    model = load_model(args.model)
    rows = []
    for key, variable in sorted(model.variables.items()):
        if not variable.is_constant:
            continue
        if args.filter and args.filter.lower() not in variable.name.lower() and args.filter.lower() != variable.sector.lower():
            continue
        default = model.defaults[key]
        if default.ndim == 0:
            shown = f"{float(default):g}"
        else:
            shown = ", ".join(
                f"{','.join(map(str, idx if isinstance(idx, tuple) else (idx,)))}={float(v):g}"
                for idx, v in default.to_series().items()
            )
            if len(shown) > 70:
                shown = shown[:67] + "..."
        subs = f"[{','.join(variable.subscripts)}]" if variable.subscripts else ""
        rows.append((variable.sector, f"{variable.name}{subs}", variable.units or "-", shown))
    for sector, name, units, shown in sorted(rows):
        print(f"{sector:<22} {name:<48} {units:<18} {shown}")
    return 0


def _cmd_data(args) -> int:
    from .calibration.data import CalibrationData, check_regions, mdl_text, replace_definitions
    from .calibration.inputs import mdl_inputs
    from .model import load_model
    from .paths import DEFAULT_MODEL

    path = Path(args.model) if args.model else DEFAULT_MODEL
    model = load_model(path)
    data = CalibrationData()
    check_regions(data, model)  # before anything is derived or written: a region the .mdl lacks breaks it
    inputs = mdl_inputs(data, model.defaults["relative mortality"])
    if not args.write:
        sys.stdout.write(mdl_text(inputs))
        return 0
    text = path.read_text(encoding="utf-8")
    updated = replace_definitions(text, inputs)
    if updated == text:
        print(f"{path}: data definitions already up to date")
    else:
        path.write_text(updated, encoding="utf-8")
        print(f"{path}: data definitions rewritten from calibration/data")
    return 0


def _cmd_regions(args) -> int:
    from .regions import build_region_model

    built = build_region_model(args.mapping, args.out, overwrite=args.overwrite, check=not args.no_check)
    print(f"{built.mdl}: {len(built.regions)} regions")
    for region in built.regions:
        print(f"  {region:<16} constants from {built.parents[region]}")
    for item in built.left_out:
        print(f"  not carried over: {item}")
    return 0


def _cmd_sketch(args) -> int:
    from .paths import DEFAULT_MODEL
    from .sketch import place_missing

    path = Path(args.model) if args.model else DEFAULT_MODEL
    text = path.read_text(encoding="utf-8")
    updated, placed = place_missing(text)
    if not placed:
        print(f"{path}: every variable is in a view")
        return 0
    if args.check:
        print(f"{path}: not in any view: {', '.join(placed)}")
        return 1
    path.write_text(updated, encoding="utf-8")
    print(f"{path}: placed {', '.join(placed)}")
    return 0


def _cmd_check(args) -> int:
    from .checks import check_model

    report = check_model(args.model, behaviour=not args.units_only, checks=args.checks, dt=args.dt)
    print(report.text())
    return 0 if report.ok else 1


def _cmd_calibrate(args) -> int:
    from .calibration.report import calibrate

    if args.method == "posterior":
        from .calibration.posterior_report import calibrate_posterior

        path = calibrate_posterior(args.config, resume=args.resume, progress=not args.quiet,
                                   out_of_sample=not args.no_out_of_sample, sampler=args.sampler)
        print(f"wrote {path} (and {path.with_suffix('.md').name}, {path.stem}_figures/)")
        return _promote_or_say(path, args.promote)
    if args.sampler is not None:
        raise SystemExit("migsd calibrate: --sampler applies to --method posterior")
    options = {}
    if args.model:
        from .model import load_model

        # another model (a folder of migsd regions): its settings, data and parameters/ sit in its calibration/
        options["model"] = load_model(args.model, calibration=None)
        config = Path(args.config) if args.config else Path(args.model).parent / "calibration" / "calibrate.toml"
        options["directory"] = config.parent / "parameters"
        options["directory"].mkdir(exist_ok=True)
        args.config = config
    path = calibrate(args.config, resume=args.resume, progress=not args.quiet,
                     out_of_sample=not args.no_out_of_sample, **options)
    print(f"wrote {path} (and {path.with_suffix('.md').name}, {path.stem}_fit.csv, {path.stem}_fit/)")
    return _promote_or_say(path, args.promote)


def _promote_or_say(path: Path, promoting: bool) -> int:
    """Promote a new calibration when asked; otherwise say which one stays the default."""
    from .calibration.fit import current, promote
    from .paths import repo_relative

    if promoting:
        promote(path, path.parent)
        print(f"promoted {repo_relative(path)}: the default calibration of every run from now on")
    else:
        from .calibration.fit import CURRENT

        # a folder's first calibration: nothing promoted yet, so runs keep the .mdl's values
        before = current(path.parent) if (path.parent / CURRENT).exists() else None
        print(f"not promoted: the default stays {repo_relative(before) if before else 'the .mdl own values'}; "
              f"'migsd promote {repo_relative(path)}' makes this one the default")
    return 0


def _cmd_promote(args) -> int:
    from .calibration.fit import current, promote
    from .paths import PARAMETERS_DIR, repo_relative

    directory = Path(args.directory) if args.directory else PARAMETERS_DIR
    try:
        before = current(directory)
    except MigsdError:
        before = None  # a broken or missing CURRENT is what promoting repairs
    path = promote(args.file, directory)
    was = f" (was {repo_relative(before)})" if before is not None and before != path else ""
    print(f"promoted {repo_relative(path)}: the default calibration of every run from now on{was}")
    return 0


def _cmd_sweep(args) -> int:
    from .model import load_model
    from .analysis.sensitivity import load_problem, sample
    from .analysis.sweep import evaluate

    model = load_model(args.model)
    problem = load_problem(args.problem, model, samples=args.n)
    if args.out is None:
        Path("outputs").mkdir(exist_ok=True)
    out = Path(args.out or f"outputs/{Path(args.problem).stem}.zarr")
    samples = sample(problem)
    print(f"{problem.title}: {problem.method}, {samples.sizes['run']} runs x {len(problem.scenarios)} scenario(s)"
          f" -> {out}")
    evaluator = "dask" if args.scheduler else args.evaluator
    results = evaluate(problem, samples, model=model, store=out, evaluator=evaluator, chunk_size=args.chunk,
                       workers=args.workers, scheduler=args.scheduler, resume=args.resume, progress=not args.quiet)
    failed = int((results["status"] == -1).sum())
    print(f"done: {int((results['status'] == 1).sum())} runs stored, {failed} failed")
    return 1 if failed else 0


def _cmd_analyze(args) -> int:
    from .model import load_model
    from .paths import REPO_ROOT
    from .analysis.sensitivity import load_problem
    import warnings

    from .analysis.sweep import open_verified, report

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results, _ = open_verified(args.store, allow_incomplete=args.allow_incomplete)
    for warning in caught:
        print(f"migsd: WARNING: {warning.message}", file=sys.stderr)
    model = load_model(args.model or REPO_ROOT / results.attrs.get("model_file", "models/migsd.mdl"))
    problem = load_problem(results.attrs["problem_file"], model, samples=None)
    problem.samples = int(results.sizes["run"])
    folder = Path(args.out or Path(args.store).with_suffix(""))
    for path in report(problem, results, folder):
        print(f"wrote {path}")
    from .analysis.discovery import discover, write
    from .indicators import YIELD_VARIABLE

    if YIELD_VARIABLE in results:
        for scenario in results["scenario"].values:
            boxes = discover(results, scenario=str(scenario), by=args.by)
            for box in boxes:
                ranges = "; ".join(f"{r.parameter} in [{r.low:.3g}, {r.high:.3g}]" for r in box.limits.itertuples())
                print(f"{scenario}: {box.outcome} in {100 * box.share:.0f}% of runs; PRIM box "
                      f"(coverage {box.coverage:.2f}, density {box.density:.2f}): {ranges or 'no restriction'}")
            for path in write(boxes, folder, str(scenario)):
                print(f"wrote {path}")
    return 0


def _cmd_report(args) -> int:
    from .report import REPORT_DIR, build

    path = build(Path(args.out or REPORT_DIR), progress=not args.quiet, sweep_samples=args.sweep_n,
                 calibration=Path(args.calibration) if args.calibration else None)
    print(f"wrote {path} and {path.with_suffix('.html').name}")
    print(path.read_text(encoding="utf-8").split("## The mechanisms")[0])
    return 0


def _cmd_loops(args) -> int:
    import numpy as np

    from .analysis.loops import SHIFTS_AFTER, dominance_by_decade, dominance_figure, dominance_shifts, stacked_figure
    from .model import load_model

    scenario = args.scenario or "status_quo"
    out = Path(args.out or Path("outputs") / "loops" / Path(scenario).stem)
    netcdf = out / "loops.nc"
    if netcdf.exists() and not args.overwrite:
        raise MigsdError(f"{netcdf} exists; add --overwrite to replace it")
    model = load_model(args.model)
    params = None
    if args.ensemble:
        from .calibration.fit import ensemble_params

        params = ensemble_params(model.calibration)
    dataset = model.loops(scenario=scenario, params=params, variable=args.variable, max_loops=args.max_loops,
                          quantiles=[0.05, 0.5, 0.95] if args.ensemble else None, engine=args.engine)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{scenario}: {dataset.sizes['loop']} loops ({dataset.attrs['loop_search']}), {dataset.attrs['engine']}")
    relative = dataset["relative loop score"].where(dataset["variable_loop"], drop=True)
    if "quantile" in relative.dims:
        relative = relative.sel(quantile=0.5)
    strength = abs(relative).mean("time")
    ranked = strength.sortby(strength, ascending=False)
    print(f"loops that matter for {args.variable} (mean absolute relative score{' median over runs' if params is not None else ''}):")
    for name in ranked["loop"].values[:args.top]:
        polarity = str(dataset["loop_polarity"].sel(loop=name).values)
        print(f"  {float(ranked.sel(loop=name)):.3f}  {polarity:<3}  {name}")
    print("dominant loop family by decade (share of runs and years):")
    for decade, name, share in dominance_by_decade(dataset):
        print(f"  {decade}s  {100 * share:3.0f}%  {name}")
    figure = stacked_figure(dataset, out / "loops.png", title=f"{scenario}: loops through {args.variable}")
    print(f"wrote {figure}")
    if params is not None:
        shifts = dominance_shifts(dataset, after=SHIFTS_AFTER)
        dataset["first dominance shift"] = shifts
        finite = shifts.values[np.isfinite(shifts.values)]
        if finite.size:
            print(f"first shift of the dominant loop family after {SHIFTS_AFTER:g}: median {np.median(finite):.0f} (5%-95% {np.quantile(finite, 0.05):.0f}-"
                  f"{np.quantile(finite, 0.95):.0f}) over {finite.size} of {shifts.size} runs")
        print(f"wrote {dominance_figure(dataset, out / 'dominance.png', title=f'{scenario}: {args.variable}')}")
    if netcdf.exists():
        netcdf.unlink()
    dataset.to_netcdf(netcdf)
    print(f"wrote {netcdf}")
    return 0


def _cmd_conformance(args) -> int:
    from .engine.conformance import DEFAULT_ROOT, report, run_all

    root = Path(args.root) if args.root else DEFAULT_ROOT
    if not root.is_dir():
        raise MigsdError(f"{root}: no test-models folder (the SDXorg test-models' tests/)")
    outcomes = run_all(root, progress=not args.quiet)
    text = report(outcomes)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        print(text, end="")
    if args.compiled:  # printed, never written into the list: its outcomes are the numpy engine's
        from .engine.conformance import agreement_report, run_agreement
        from .model import cache_dir

        passing = [root / o.model for o in outcomes if o.status == "passes"]
        print("\n" + agreement_report(run_agreement(passing, root, cache_dir(), progress=not args.quiet)), end="")
    return 0


def _cmd_explore(args) -> int:
    from .explore.app import Explorer, serve
    from .paths import DEFAULT_PROBLEM
    from .paths import SCENARIOS_DIR

    if not 1 <= args.port <= 65535:
        raise MigsdError(f"--port {args.port}: a port is a number from 1 to 65535")
    _check_port(args.address, args.port)  # before loading the model: a busy port is known in a millisecond
    save_dir = Path(args.save_dir) if args.save_dir else SCENARIOS_DIR
    if not save_dir.is_dir():
        raise MigsdError(f"--save-dir {save_dir}: no such folder")
    explorer = Explorer.load(problem=None if args.no_problem else (args.problem or DEFAULT_PROBLEM), save_dir=save_dir)
    explorer.scenario(args.scenario)
    print(f"migsd explore: serving http://{args.address}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        serve(explorer, args.scenario, port=args.port, address=args.address, show=args.show)
    except OSError as error:  # taken between the check and the server's own bind
        raise _port_error(args.address, args.port, error) from error
    return 0


def _port_error(address: str, port: int, error: OSError) -> MigsdError:
    import errno

    if error.errno == errno.EADDRINUSE:
        return MigsdError(f"--port {port}: {address}:{port} is already in use (another migsd explore?); "
                          "choose another with --port")
    return MigsdError(f"--address {address} --port {port}: cannot listen there: {error.strerror or error}")


def _check_port(address: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the server binds: a port left in TIME_WAIT by a stopped server is free, a listening one is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            raise _port_error(address, port, error) from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migsd", description="Run the migsd system-dynamics model of global migration governance."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run scenarios and report when Northern restrictiveness yields")
    run.add_argument("--scenario", action="append", metavar="NAME",
                     help="scenario name or .toml file (repeat for several; default status_quo)")
    run.add_argument("--out", metavar="FILE.nc", help="write the results to netCDF")
    run.add_argument("--plot", metavar="FILE.png", help="write the headline figure")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files")
    run.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a constant (repeatable)")
    run.add_argument("--final-time", type=float, help="override FINAL TIME")
    run.add_argument("--time-step", type=float, help="override TIME STEP")
    run.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--engine", choices=("auto", "compiled", "numpy", "batched", "pysd"), default="auto",
                     help="integrate with the batched engine (auto: where it compiles the .mdl; its compiled "
                          "kernel where that is in the cache, else numpy), forcing its compiled or numpy backend, "
                          "or with pysd")
    run.add_argument("--keep-nonfinite", action="store_true",
                     help="keep (and write) a run whose values turn NaN or infinite, to see how it broke; "
                          "it still exits 1")
    run.set_defaults(func=_cmd_run)

    scenarios = commands.add_parser("scenarios", help="list the shipped scenarios with their titles")
    scenarios.set_defaults(func=_cmd_scenarios)

    params = commands.add_parser("params", help="list the constants a scenario may set, with units and defaults")
    params.add_argument("--filter", help="only names containing this text, or one sector")
    params.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    params.set_defaults(func=_cmd_params)

    data = commands.add_parser("data", help="print (or --write) the .mdl definitions derived from calibration/data")
    data.add_argument("--write", action="store_true", help="rewrite them in the .mdl")
    data.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    data.set_defaults(func=_cmd_data)

    regions = commands.add_parser(
        "regions", help="write a complete model folder (.mdl, data, scenarios, checks, targets) for a country -> "
                        "region mapping")
    regions.add_argument("mapping", metavar="MAPPING.csv",
                         help="iso3,name,region for every country of calibration/data/locations.csv; MAPPING.toml "
                              "beside it, if present, is its region table")
    regions.add_argument("--out", metavar="DIR", required=True, help="the model folder to write")
    regions.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    regions.add_argument("--no-check", action="store_true",
                         help="do not load the written model to check its scenarios")
    regions.set_defaults(func=_cmd_regions)

    sketch = commands.add_parser("sketch", help="add variables that no view shows to the view of their group")
    sketch.add_argument("--check", action="store_true", help="only report; exit 1 if any is missing")
    sketch.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    sketch.set_defaults(func=_cmd_sketch)

    check = commands.add_parser(
        "check", help="check units of every equation, run the behaviour checks (exit 1 on any error or failure)"
    )
    check.add_argument("model", nargs="?", help="a .mdl file (default: models/migsd.mdl)")
    check.add_argument("--checks", metavar="FILE.toml", help="behaviour checks (default: checks.toml beside the model)")
    check.add_argument("--units-only", action="store_true", help="check units only")
    check.add_argument("--dt", action="store_true", help="also rerun with half the TIME STEP and report each stock's change")
    check.set_defaults(func=_cmd_check)

    calibrate = commands.add_parser("calibrate", help="fit the calibrated parameters to the UN data in calibration/")
    calibrate.add_argument("--config", help="settings file (default: calibration/calibrate.toml)")
    calibrate.add_argument("--model", help="a .mdl in a folder written by 'migsd regions' (default: models/migsd.mdl); "
                                           "settings, data and results in its calibration/ folder")
    calibrate.add_argument("--resume", action="store_true",
                           help="continue the last interrupted calibration, reusing its logged evaluations")
    calibrate.add_argument("--method", choices=("fit", "posterior"), default="fit",
                           help="fit: optimiser and resampled ensemble (calibrated_vN.csv); posterior: Bayesian "
                                "posterior (posterior_vN.nc), sampler and settings in calibrate.toml [posterior]")
    calibrate.add_argument("--sampler", choices=("smc", "emcee"), help="posterior sampler (default: the settings')")
    calibrate.add_argument("--no-out-of-sample", action="store_true", help="skip the 1990-2010 refit")
    calibrate.add_argument("--quiet", action="store_true", help="no progress bar")
    calibrate.add_argument("--promote", action="store_true",
                           help="make the new calibration the default (otherwise the promoted one stays)")
    calibrate.set_defaults(func=_cmd_calibrate)

    promote = commands.add_parser("promote", help="make a calibrated parameter file the default of every run")
    promote.add_argument("file", help="a file in calibration/parameters/ (e.g. calibration/parameters/calibrated_v2.csv)")
    promote.add_argument("--directory", metavar="DIR", help="the parameters folder (default calibration/parameters)")
    promote.set_defaults(func=_cmd_promote)

    sweep = commands.add_parser("sweep", help="run a sensitivity problem (models/sensitivity/*.toml) into a zarr store")
    sweep.add_argument("problem", help="problem file, or the name of one in models/sensitivity/")
    sweep.add_argument("--n", type=int, help="sample size (overrides the file's 'samples')")
    sweep.add_argument("--out", metavar="STORE.zarr", help="result store (default outputs/<problem>.zarr)")
    sweep.add_argument("--evaluator", choices=("inprocess", "processes", "dask"), default="inprocess")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="an existing dask scheduler (implies --evaluator dask)")
    sweep.add_argument("--workers", type=int, default=2, help="processes or LocalCluster workers (default 2)")
    sweep.add_argument("--chunk", type=int, default=256, help="runs per task (default 256)")
    sweep.add_argument("--resume", action="store_true", help="complete an interrupted sweep in --out")
    sweep.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_cmd_sweep)

    analyze = commands.add_parser("analyze", help="sensitivity indices and figures of a finished sweep")
    analyze.add_argument("store", help="the sweep's zarr store")
    analyze.add_argument("--out", help="folder for indices.nc and figures (default: the store's name)")
    analyze.add_argument("--model", help="a .mdl file (default: the sweep's)")
    analyze.add_argument("--allow-incomplete", action="store_true",
                         help="analyse a store with pending, failed or altered chunks (said loudly), "
                              "using only the runs that are done")
    analyze.add_argument("--by", type=float, default=2060,
                         help="scenario discovery: the year by which restrictiveness must have yielded (default 2060)")
    analyze.set_defaults(func=_cmd_analyze)

    report = commands.add_parser(
        "report", help="every scenario over the calibrated ensemble, the sweep, and outputs/report/report.md"
    )
    report.add_argument("--out", help="folder (default outputs/report)")
    report.add_argument("--sweep-n", type=int, help="sample size of the restrictionism sweep (default: the file's)")
    report.add_argument("--quiet", action="store_true", help="no progress bars")
    report.add_argument("--calibration", help="a calibrated_vN.csv or posterior_vN.nc to report on instead of the "
                                              "promoted one (its members, or 400 posterior draws, are the ensemble)")
    report.set_defaults(func=_cmd_report)

    explore = commands.add_parser(
        "explore", help="serve a local web page: move levers and uncertain parameters, watch the decades change")
    explore.add_argument("--scenario", default="status_quo", help="scenario the page starts from (default status_quo)")
    explore.add_argument("--port", type=int, default=5006, help="port to serve on (default 5006)")
    explore.add_argument("--address", default="127.0.0.1",
                         help="address to bind (default 127.0.0.1: this machine only)")
    explore.add_argument("--problem", metavar="FILE.toml",
                         help="sensitivity problem whose parameters get sliders "
                              "(default models/sensitivity/restrictionism.toml)")
    explore.add_argument("--no-problem", action="store_true", help="levers only, no uncertain-parameter sliders")
    explore.add_argument("--save-dir", metavar="DIR",
                         help="where 'save as scenario' writes (default models/scenarios)")
    explore.add_argument("--show", action="store_true", help="open the page in the default browser")
    explore.set_defaults(func=_cmd_explore)

    loops = commands.add_parser("loops", help="loops that matter: loop scores, the dominant loop of a variable, figures")
    loops.add_argument("--scenario", help="scenario name or .toml file (default status_quo)")
    loops.add_argument("--variable", default="Restrictiveness[North]",
                       help="the variable whose loops matter, optionally one element (default Restrictiveness[North])")
    loops.add_argument("--ensemble", action="store_true",
                       help="over the calibrated ensemble: quantiles over runs, dominance probabilities, shifts")
    loops.add_argument("--out", metavar="DIR", help="folder for loops.nc and the figures (default outputs/loops/SCENARIO)")
    loops.add_argument("--max-loops", type=int, help="enumerate loops exhaustively up to this many (default 400)")
    loops.add_argument("--top", type=int, default=10, help="loops listed (default 10)")
    loops.add_argument("--overwrite", action="store_true", help="replace an existing loops.nc")
    loops.add_argument("--model", help="a .mdl file (default: models/migsd.mdl)")
    loops.add_argument("--engine", choices=("auto", "compiled", "numpy"), default="auto",
                       help="who integrates (auto: numpy, as fast here as the kernel and lighter on memory)")
    loops.set_defaults(func=_cmd_loops)

    conformance = commands.add_parser(
        "conformance", help="run the SDXorg test-models through the batched engine and list the outcomes"
    )
    conformance.add_argument("--root", help="the test-models' tests/ folder (default: ../shared/conformance/...)")
    conformance.add_argument("--write", metavar="FILE.md", help="write the list (docs/conformance.md)")
    conformance.add_argument("--quiet", action="store_true", help="no progress bar")
    conformance.add_argument("--compiled", action="store_true",
                             help="also check that the compiled backend gives the numpy engine's values (to 1e-12) "
                                  "on every model that passes (compiles each, a few seconds a model)")
    conformance.set_defaults(func=_cmd_conformance)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # a user reads what happened, not which line of migsd noticed it
    print(f"migsd: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except MigsdError as error:
        print(f"migsd: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("migsd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into head or similar: the reader has all it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
