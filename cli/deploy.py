"""``train_cli.py deploy-space`` and ``campaign``: shipping the app to a Hugging Face Space, and the
GPU campaign's steps (bundle, detach / restore, homecoming); their errors become one line."""

from __future__ import annotations

from cli.common import UsageError


def cmd_deploy_space(args) -> int:
    from seg_core.space import DeployError, deploy_space, describe, plan_space

    try:
        plan = plan_space(args.space, args.sdk, args.weights_repo, private=args.private)
        print(describe(plan))
        if args.dry_run:
            print("dry run: nothing was sent to the Hub")
            return 0
        deploy_space(plan)
    except DeployError as err:
        raise UsageError(str(err)) from None
    return 0


def cmd_campaign(args) -> int:
    from seg_core import campaign

    try:
        print(campaign.run_step(args.step, args), end="")
    except campaign.CampaignError as err:
        raise UsageError(str(err)) from None
    return 0
