"""novalab's code that runs inside the nova venv (TEST USE ONLY).

Self-contained, standard library only: init copies this file to $NOVALAB_DIR/lib as
novalab_shims.py, where the paste filter, the gunicorn entry points and the glance/neutron
stand-ins are loaded from it. Run as a script it serves the stand-ins.
"""
import json
import sys

# the glance stand-in serves this one image; nova is told where both stand-ins listen
IMAGE_ID = '6f1c3b9e-2d4a-4e8b-9c7d-0a1b2c3d4e5f'
GLANCE_PORT, NEUTRON_PORT = 9292, 9696

_IDENTITY_PREFIXES = ('HTTP_X_USER', 'HTTP_X_PROJECT', 'HTTP_X_TENANT',
                      'HTTP_X_ROLE', 'HTTP_X_SERVICE_', 'HTTP_X_DOMAIN',
                      'HTTP_X_IDENTITY_STATUS', 'HTTP_X_SYSTEM_SCOPE',
                      'HTTP_X_IS_ADMIN_PROJECT')


def noauth_filter_factory(global_conf, **local_conf):
    """Paste filter replacing keystonemiddleware in nova-api (TEST ONLY).

    Nova 34 dropped its noauth2 pipeline.  X-Auth-Token "user:project"
    becomes the identity headers NovaKeystoneContext reads; user "admin"
    gets roles admin,member,reader, anyone else member,reader.
    """
    def make(app):
        def noauth(environ, start_response):
            token = environ.get('HTTP_X_AUTH_TOKEN')
            if not token:
                start_response('401 Unauthorized',
                               [('Content-Type', 'text/plain')])
                return [b'X-Auth-Token "user:project" required\n']
            for key in [k for k in environ if k.startswith(_IDENTITY_PREFIXES)]:
                del environ[key]  # never trust client-sent identity
            user, _, project = token.partition(':')
            environ.update({
                'HTTP_X_USER_ID': user, 'HTTP_X_USER_NAME': user,
                'HTTP_X_PROJECT_ID': project or user,
                'HTTP_X_PROJECT_NAME': project or user,
                'HTTP_X_IDENTITY_STATUS': 'Confirmed',
                'HTTP_X_ROLES': ('admin,member,reader' if user == 'admin'
                                 else 'member,reader')})
            return app(environ, start_response)
        return noauth
    return make


def nova_api_app():
    """gunicorn entry 'novalab_shims:nova_api_app()'.  Nova's WSGI init parses
    sys.argv with oslo.config and would choke on gunicorn's arguments."""
    sys.argv = ['nova-api']
    from nova.wsgi import osapi_compute
    return osapi_compute.application


def placement_app():
    sys.argv = ['placement-api']
    from placement.wsgi import api as placement_api
    return placement_api.application


def _glance(method, path):
    """Image metadata only: the fake virt driver never downloads images."""
    now = '2025-01-01T00:00:00Z'
    image = {'id': IMAGE_ID, 'name': 'novalab-image', 'status': 'active',
             'visibility': 'public', 'protected': False, 'os_hidden': False,
             'disk_format': 'raw', 'container_format': 'bare', 'size': 1024,
             'virtual_size': 1024, 'min_disk': 0, 'min_ram': 0,
             'owner': 'admin', 'tags': [], 'created_at': now,
             'updated_at': now, 'file': '/v2/images/%s/file' % IMAGE_ID,
             'self': '/v2/images/' + IMAGE_ID, 'schema': '/v2/schemas/image'}
    # permissive: glanceclient builds a warlock model from it
    schema = {'name': 'image', 'properties': {k: {} for k in image},
              'additionalProperties': {'type': 'string'}}
    if path in ('', '/versions'):
        return 200, {'versions': [{'id': 'v2.16', 'status': 'CURRENT', 'links': [
            {'rel': 'self', 'href': 'http://127.0.0.1:%d/v2/' % GLANCE_PORT}]}]}
    if path == '/v2/schemas/image':
        return 200, schema
    if method == 'GET' and path == '/v2/images':
        return 200, {'images': [image], 'schema': '/v2/schemas/images',
                     'first': '/v2/images'}
    if method == 'GET' and path == '/v2/images/' + IMAGE_ID:
        return 200, image
    # glanceclient only parses this error shape; others become nova 500s
    return 404, {'error': {'code': 404, 'title': 'Not Found',
                           'message': 'No image at %s' % path}}


def _neutron(method, path):
    """No ports, no networks: servers boot with networks='none'."""
    if path == '':
        return 200, {'versions': [{'id': 'v2.0', 'status': 'CURRENT', 'links': [
            {'rel': 'self', 'href': 'http://127.0.0.1:%d/v2.0/' % NEUTRON_PORT}]}]}
    parts = path.split('/')
    if method == 'GET' and len(parts) == 3 and parts[1] == 'v2.0':
        # every list (ports, networks, extensions, security-groups) is empty
        return 200, {parts[2].replace('-', '_'): []}
    return 404, {'NeutronError': {'type': 'NotFound', 'detail': '',
                                  'message': 'not in the novalab stub'}}


def serve_stubs():
    """glance stand-in on :9292 and neutron stand-in on :9696 (stdlib)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def handler(route):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)  # keep the connection in sync
                code, body = route(self.command,
                                   self.path.split('?')[0].rstrip('/'))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, fmt, *args):
                print('%s %s' % (route.__name__, fmt % args), flush=True)
        return Handler

    ThreadingHTTPServer.request_queue_size = 64  # bursts of nova requests
    servers = [ThreadingHTTPServer(('127.0.0.1', GLANCE_PORT), handler(_glance)),
               ThreadingHTTPServer(('127.0.0.1', NEUTRON_PORT),
                                   handler(_neutron))]
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    print('stubs: glance :%d neutron :%d' % (GLANCE_PORT, NEUTRON_PORT),
          flush=True)
    servers[0].serve_forever()


if __name__ == '__main__':
    serve_stubs()
