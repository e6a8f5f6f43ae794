"""``contacts cluster``: the instances sharing this database, as PostgreSQL sees them.

Read straight from the placement tables (never through a server), so it answers even when
no instance does: which instances are registered, their address, the age of their last
heartbeat by the database's clock, whether they are live or draining, how many users each
hosts and how many it took over in the last hour. ``--prune`` removes registrations dead
for an hour (their leases are released) and takeover records older than a week.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from contacts_cli.cli.db import database_url_for, run_db, schema_name
from contacts_cli.cli.options import JsonOption, options_of
from contacts_cli.cli.render import Output

if TYPE_CHECKING:
    from persistence.placement import ClusterStatus

HELP = "The instances sharing this database: heartbeats, users hosted, takeovers."


def status(
    ctx: typer.Context,
    prune: Annotated[bool, typer.Option(
        "--prune", help="First remove registrations dead for an hour and takeover records "
                        "older than a week.")] = False,
    json_: JsonOption = False,
) -> None:
    """Every registered instance: address, heartbeat age, live, users, takeovers."""
    out = Output(json_mode=json_)
    options = options_of(ctx)

    async def job() -> dict[str, Any]:
        from persistence.placement import PlacementStore
        from persistence.postgres.config import PostgresConfig

        async with database_url_for(options) as url:
            store = PlacementStore(PostgresConfig(url, schema=schema_name(), connect_timeout=5),
                                   application_name="contacts-cluster-status")
            async with store:
                pruned = await store.prune() if prune else None
                report = status_json(await store.status())
        if pruned is not None:
            report["pruned"] = {"instances": pruned[0], "takeover_records": pruned[1]}
        return report

    report = run_db(out, job)
    if out.json_mode:
        out.json(report)
        return
    render(out, report)


def status_json(status: ClusterStatus) -> dict[str, Any]:
    """The status as plain JSON (times in ISO 8601, by the database's clock)."""
    return {
        "database_time": status.database_time.isoformat(),
        "instances_live": sum(1 for i in status.instances if i.live),
        "takeovers_last_hour": status.takeovers_last_hour,
        "instances": [
            {
                "id": i.instance_id,
                "address": i.address,
                "live": i.live,
                "draining": i.draining,
                "heartbeat_age_seconds": round(i.heartbeat_age, 3),
                "users": i.users,
                "takeovers_last_hour": i.takeovers_last_hour,
                "started_at": i.started_at.isoformat(),
                "expires_at": i.expires_at.isoformat(),
            }
            for i in status.instances
        ],
    }


def render(out: Output, report: dict[str, Any]) -> None:
    instances = report["instances"]
    rows = [
        {
            "instance": i["id"][:12],
            "address": i["address"] or "(in-process command)",
            "state": ("draining" if i["draining"] else "live") if i["live"] else "expired",
            "heartbeat": f"{i['heartbeat_age_seconds']:.1f} s ago",
            "users": i["users"],
            "takeovers (1 h)": i["takeovers_last_hour"],
        }
        for i in instances
    ]
    if rows:
        out.records(rows, list(rows[0]))
    else:
        out.message("no instance is registered on this database")
    out.message(f"{report['instances_live']} live instance(s); "
                f"{report['takeovers_last_hour']} takeover(s) in the last hour")
    if "pruned" in report:
        pruned = report["pruned"]
        out.message(f"pruned {pruned['instances']} dead instance(s) and "
                    f"{pruned['takeover_records']} old takeover record(s)")
