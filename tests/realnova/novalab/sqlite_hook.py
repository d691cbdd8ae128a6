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

Only oslo.db's writer transactions take it: a reader (enginefacade's reader and
async_reader) keeps the deferred BEGIN and reads its WAL snapshot without the
lock, as a reader reads InnoDB's snapshot in production.

A writer waiting for the lock sleeps in SQLite's busy handler: 1, 2, 5 ... then
100 ms at a time, blind to the lock's release.  With conductor and computes
writing while evacuations come in, nova-api's requests spent two thirds of their
time there (py-spy).  So writers first queue on an flock of a file beside the
database, in the kernel, which wakes the next one as the last one commits (as
a MySQL lock wait does); BEGIN IMMEDIATE then finds the lock free.
"""
import fcntl
import importlib.abc
import importlib.util
import os
import sys


READER = 'novalab_reader'  # execution option: an oslo.db reader's connection


_queued = {}  # id(sqlite3 connection) -> fd holding its database's writer flock


def _queue(dbapi_conn, database):
    if id(dbapi_conn) not in _queued:
        fd = os.open(database + '.novalab-writer', os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits without the GIL
        _queued[id(dbapi_conn)] = fd


def _unqueue(conn):
    fd = _queued.pop(id(getattr(conn, 'dbapi_connection', conn)), None)
    if fd is not None:
        os.close(fd)  # releases the flock


def _begin_immediate(conn, cursor, statement, parameters, context, many):
    if (conn.dialect.name == 'sqlite' and statement.strip().upper() == 'BEGIN'
            and not conn.get_execution_options().get(READER)):
        statement = 'BEGIN IMMEDIATE'
        database = conn.engine.url.database
        if database and database != ':memory:':
            _queue(cursor.connection, database)
    return statement, parameters


def _ends_release(dialect):
    """COMMIT and ROLLBACK (the pool's reset on return too) end the turn."""
    for name in ('do_commit', 'do_rollback'):
        def end(self, dbapi_connection, _done=getattr(dialect, name)):
            try:
                _done(self, dbapi_connection)
            finally:
                _unqueue(dbapi_connection)
        setattr(dialect, name, end)


def _readers_deferred(facade):
    """Mark the connections of enginefacade's readers (see READER)."""
    factory = facade._TransactionFactory
    create_connection, create_session = (factory._create_connection,
                                         factory._create_session)

    def reader(self, mode):
        return mode is not facade._WRITER

    def _create_connection(self, mode):
        conn = create_connection(self, mode)
        return conn.execution_options(**{READER: True}) if reader(self, mode) \
            else conn

    def _create_session(self, mode, bind=None):
        session = create_session(self, mode, bind=bind)
        if bind is None and reader(self, mode):  # its engine, marked
            session.bind = session.bind.execution_options(**{READER: True})
        return session

    factory._create_connection = _create_connection
    factory._create_session = _create_session


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


def _sqlalchemy_loaded(module):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    event.listen(Engine, 'before_cursor_execute', _begin_immediate,
                 retval=True)
    module.create_engine = _pooled(module.create_engine)
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
    _ends_release(SQLiteDialect_pysqlite)


# module -> what to do once it has loaded
_PATCHES = {'sqlalchemy': _sqlalchemy_loaded,
            'oslo_db.sqlalchemy.enginefacade': _readers_deferred}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = _PATCHES.pop(name, None)
        if patch is None:
            return None
        if not _PATCHES:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                patch(module)
            spec.loader.exec_module = exec_module
        return spec


if not set(_PATCHES) & set(sys.modules):
    sys.meta_path.insert(0, _Finder())
