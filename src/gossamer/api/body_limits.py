"""The REST API's default size limits, apart from the middleware (``api.limits``) so the
command line reads them without importing the web framework.

``--max-request-bytes`` bounds a request body before it is parsed: 16 MiB is about 100,000
services in one apply. ``--max-resource-bytes`` bounds one resource as canonical JSON:
1 MiB, as etcd takes in one request, is far above any real resource.
"""

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_RESOURCE_BYTES = 1024 * 1024
