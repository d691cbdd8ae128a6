"""python -m tests.realnova.novalab COMMAND (see the package's docstring)."""
import argparse

from tests.harness.procs import CommandFailed
from tests.realnova.novalab.lab import NovaLab
from tests.realnova.novalab.layout import NovaLabError, log


def main(argv=None):
    from tests.realnova import novalab

    parser = argparse.ArgumentParser(prog='python -m tests.realnova.novalab',
                                     description=novalab.__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    for cmd in ('install', 'init', 'start', 'up', 'stop', 'status', 'down'):
        sub.add_parser(cmd)
    for cmd in ('restart-compute', 'reset-host'):
        sub.add_parser(cmd).add_argument('host')
    args = parser.parse_args(argv)
    lab = NovaLab()
    if args.cmd == 'status':
        print('%-16s %8s %8s' % ('NAME', 'PID', 'RSS_MB'))
        total = 0.0
        for name, (pid, rss) in lab.status().items():
            print('%-16s %8s %8.0f' % (name, pid or 'dead', rss))
            total += rss
        print('%-16s %8s %8.0f' % ('total', '', total))
        return 0 if lab.is_running() else 1
    try:
        with lab.exclusive():
            if args.cmd == 'restart-compute':
                lab.restart_compute(args.host)
            elif args.cmd == 'reset-host':
                lab.reset_host(args.host)
            else:
                getattr(lab, args.cmd)()
    except (NovaLabError, CommandFailed) as e:
        log('ERROR: %s' % e)
        return 1
    return 0
