"""novalab: make oslo.db's SQLite transactions BEGIN IMMEDIATE (TEST USE ONLY).

Never imported here: init copies this file into the nova venv's site-packages as
novalab_sqlite.py, with a .pth line importing it, so it runs in every venv process
(nova-manage, services, gunicorn). It must import nothing heavy before eventlet's monkey
patching: it only arms a finder that acts once sqlalchemy loads.

oslo.db also gives SQLite file databases a NullPool: a new connection, with its PRAGMAs and
functions, for every transaction, a fifth of nova-api's CPU per request in this lab. Production
databases are pooled; so is the lab's (QueuePool, as SQLAlchemy itself would choose).

oslo.db starts every SQLite transaction with a deferred "BEGIN".  With several
nova processes writing one file, a transaction that read first and then
writes gets "database is locked" at once: SQLite refuses the read->write lock
upgrade instead of waiting, so the busy timeout never applies.  IMMEDIATE
takes the write lock up front and the others wait (?timeout= in the URL).
"""
import importlib.abc
import importlib.util
import sys


def _begin_immediate(conn, cursor, statement, parameters, context, many):
    if conn.dialect.name == 'sqlite' and statement.strip().upper() == 'BEGIN':
        statement = 'BEGIN IMMEDIATE'
    return statement, parameters


def _pooled(create_engine):
    def create(url, **kw):
        from sqlalchemy import pool
        if kw.get('poolclass') is pool.NullPool and str(url).startswith('sqlite'):
            kw['poolclass'] = pool.QueuePool
            kw.update(pool_size=4, max_overflow=16)
            # a pooled connection may serve another thread next time
            kw['connect_args'] = dict(kw.get('connect_args') or {},
                                      check_same_thread=False)
        return create_engine(url, **kw)
    return create


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != 'sqlalchemy':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                from sqlalchemy import event
                from sqlalchemy.engine import Engine
                event.listen(Engine, 'before_cursor_execute',
                             _begin_immediate, retval=True)
                module.create_engine = _pooled(module.create_engine)
            spec.loader.exec_module = exec_module
        return spec


if 'sqlalchemy' not in sys.modules:
    sys.meta_path.insert(0, _Finder())
