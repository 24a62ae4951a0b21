"""``ovr submit --host URL``: upload/version the compiled pipeline and start a run on a KFP server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("submit")
    def submit(
        host: Annotated[str, typer.Option(envvar="KF_PIPELINES_ENDPOINT", help="KFP API/UI URL.")],
        pipeline_file: Annotated[
            Path, typer.Option(help="Compiled pipeline YAML (`ovr pipeline compile`).", dir_okay=False)
        ] = Path("pipelines/ovr_pipeline.yaml"),
        experiment: Annotated[str, typer.Option(help="Experiment (created when missing).")] = "ovr",
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="Run parameter name=value (repeatable).")
        ] = None,
        version: Annotated[
            str | None, typer.Option(help="Name of the new pipeline version (default: time-sha).")
        ] = None,
        run_name: Annotated[str | None, typer.Option(help="Run display name.")] = None,
        wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit 1 unless it succeeds.")] = False,
        timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 7 * 86400,
        poll: Annotated[float, typer.Option(help="With --wait: seconds between status checks.")] = 30.0,
        token: Annotated[str | None, typer.Option(envvar="OVR_KFP_TOKEN", help="Bearer token for the KFP API.")] = None,
        namespace: Annotated[str | None, typer.Option(help="Profile namespace (multi-user KFP).")] = None,
        service_account: Annotated[
            str | None, typer.Option(help="ServiceAccount the run's pods use (the chart's <release>-pipeline).")
        ] = None,
        cookie: Annotated[
            str | None,
            typer.Option(
                envvar="OVR_KFP_COOKIE", help="Session cookie(s) for a Dex-fronted KFP, e.g. authservice_session=..."
            ),
        ] = None,
    ) -> None:
        """Upload the pipeline (or a new version of it), create a run in an experiment, optionally wait."""
        from kfp_server_api.exceptions import ApiException

        from pipelines.submit import submit as do_submit

        try:
            sub = do_submit(
                host,
                pipeline_file,
                experiment=experiment,
                params=list(param or []),
                version=version,
                run_name=run_name,
                wait=wait,
                timeout_s=timeout,
                poll_s=poll,
                token=token,
                namespace=namespace,
                service_account=service_account,
                cookies=cookie,
                on_state=typer.echo,
            )
        except (ValueError, FileNotFoundError) as err:
            typer.secho(f"ovr submit: {err}", fg="red", err=True)
            raise typer.Exit(2) from err
        except TimeoutError as err:
            typer.secho(f"ovr submit ({host}): {err}", fg="red", err=True)
            raise typer.Exit(1) from err
        except ApiException as err:
            typer.secho(f"ovr submit ({host}): HTTP {err.status} {err.reason}: {err.body}", fg="red", err=True)
            raise typer.Exit(1) from err
        typer.echo(f"pipeline {sub.pipeline_id} version {sub.version_id}")
        typer.echo(f"experiment {sub.experiment_id} run {sub.run_id}")
        if wait and not sub.succeeded:
            typer.secho(f"run {sub.run_id} ended {sub.state}: {sub.error}".rstrip(": "), fg="red", err=True)
            raise typer.Exit(1)
