"""The GPU campaign: what travels to a borrowed GPU machine, what comes back, and the decision at home.

A borrowed machine gives 15 minutes in all, runs a command for at most 10, takes at most 64 MiB of
working tree and returns at most 8 files (16 MiB each, 64 MiB per command) from its output folder.
So the campaign is two prepared commands (``device_commands``), checked here for size and length
before they are spent (``bundle``), a device-side script (``scripts/gpu_campaign.py``) that writes
each model as sha256-checked chunks (``write_chunks``) the moment it is trained, and a homecoming
(``home``) that reassembles them and replaces a shipped model only when a paired bootstrap over val
images puts its mIoU gain above zero. docs/gpu_campaign.md is the step-by-step.

By job: ``campaign_chunks`` (what comes back: chunks, manifest, reassembly, return limits),
``campaign_travel`` (what goes: bundle, sizes, commands, detach / restore of weights/),
``campaign_home`` (the homecoming and the model card's rows); this module re-exports their names
and turns ``train_cli.py campaign <step>`` into what to print.
"""

from __future__ import annotations

import json
from pathlib import Path

from .campaign_chunks import (CHUNK_BYTES, LOG_NAME, MANIFEST, MAX_BYTES_BACK, MAX_FILES_BACK, CampaignError, MiB,
                              check_return, read_manifest, reassemble, write_chunks)
from .campaign_home import home, model_card
from .campaign_travel import (AUGMENT, BUNDLE, COMMANDS, EXCLUDE_MARK, MAX_COMMAND, MAX_TRAVEL, WHEEL, DeviceCommand,
                              bundle, check_travel, detach_weights, device_commands, git, restore_weights,
                              travel_bytes)

__all__ = ["AUGMENT", "BUNDLE", "CHUNK_BYTES", "COMMANDS", "EXCLUDE_MARK", "LOG_NAME", "MANIFEST", "MAX_BYTES_BACK",
           "MAX_COMMAND", "MAX_FILES_BACK", "MAX_TRAVEL", "WHEEL", "CampaignError", "DeviceCommand", "MiB", "bundle",
           "check_return", "check_travel", "detach_weights", "device_commands", "home", "model_card",
           "read_manifest", "reassemble", "restore_weights", "run_step", "travel_bytes", "write_chunks"]


def _run_call(c: DeviceCommand) -> str:
    return json.dumps({"command": c.command, "carry": c.carry, "timeout_s": c.timeout_s})


def run_step(step: str, args) -> str:
    """``train_cli.py campaign <step>``: do it and return what to print."""
    repo = Path(args.repo)
    if step == "bundle":
        r = bundle(repo, args.data, repack=args.repack)
        s = r["sizes"]
        a, b = r["commands"]
        return (f"bundle {BUNDLE}/: train.npz {r['packs']['train'] / MiB:.1f} MiB, val.npz {r['packs']['val'] / MiB:.1f} MiB, "
                f"{r['wheel']} {r['wheel_bytes'] / 1024:.0f} KiB\n"
                f"what travels with weights/ detached: working tree {s['tree'] / MiB:.1f} MiB + {BUNDLE} "
                f"{s['carry'][BUNDLE] / MiB:.1f} MiB = {s['total'] / MiB:.1f} MiB of {MAX_TRAVEL // MiB} MiB\n"
                f"commands: A {len(a.command)}, B {len(b.command)} characters of {MAX_COMMAND}\n\n"
                "1. python train_cli.py campaign detach\n"
                f"2. device run, command A ({', '.join(a.archs)}; {a.timeout_s} s):\n   {_run_call(a)}\n"
                f"3. AT ONCE, no other step between (the machine stays warm ~30 s), command B "
                f"({', '.join(b.archs)}; {b.timeout_s} s):\n   {_run_call(b)}\n"
                "   then give_back\n"
                "4. python train_cli.py campaign restore      # always, even when a call failed; commit nothing before\n"
                "5. python train_cli.py campaign home --incoming <files_at of A> --incoming <files_at of B>\n")
    if step == "detach":
        s = detach_weights(repo)
        return (f"weights/ is out of the git index and ignored; what travels: working tree {s['tree'] / MiB:.1f} MiB "
                f"+ {BUNDLE} {s['carry'][BUNDLE] / MiB:.1f} MiB = {s['total'] / MiB:.1f} MiB of {MAX_TRAVEL // MiB} MiB.\n"
                "Make the two device calls now, then: python train_cli.py campaign restore (also after a failure).\n")
    if step == "restore":
        restore_weights(repo)
        n = len(git(repo, "ls-files", "weights").split())
        return f"weights/ is back in the git index ({n} files) and no longer ignored.\n"
    if not args.incoming:
        raise CampaignError("home needs --incoming FOLDER for each device command's returned files")
    r = home(args.incoming, args.out, args.weights, args.val, limit=args.limit, apply=args.apply)
    lines = [f"on {r['val']} ({r['pairs']} pairs); report: {Path(args.out) / 'home_report.json'}, "
             f"rows for the model card: {Path(args.out) / 'model_card.md'}"]
    for arch, e in r["models"].items():
        line = f"{arch}: new mIoU {e['new']['miou']:.4f}"
        if "bootstrap" in e:
            bs = e["bootstrap"]
            line += (f", shipped {e['shipped']['miou']:.4f}, difference {bs['delta']:+.4f} "
                     f"({100 * bs['level']:.0f}% interval {bs['lo']:+.4f} .. {bs['hi']:+.4f})")
        line += ": " + ("REPLACE" if e["replace"] else "keep the shipped model")
        if e.get("replaced"):
            line += f" (copied into {args.weights})"
        lines.append(line)
    chosen = [a for a, e in r["models"].items() if e["replace"]]
    if chosen and not args.apply:
        lines.append("rerun with --apply to copy them into weights/")
    for arch in chosen if args.apply else []:
        lines.append(f"then: python train_cli.py export --weights {args.weights}/{arch}.safetensors --int8 "
                     f"--check {args.val}")
    if args.apply and chosen:
        lines.append(f"then: python train_cli.py eval --weights {args.weights}   # fp32 and int8, model card numbers")
    return "\n".join(lines) + "\n"
