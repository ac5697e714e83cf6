#!/usr/bin/python3
"""s3mini.py: a minimal S3 client (SigV4, path-style) in the Python standard
library, used by the integration tests to look at what oboxfs stored: list,
HEAD (with x-amz-meta-*), GET and DELETE.  It is deliberately independent of
the project's own C client, so the tests check the store with a second,
simple implementation.
"""
import datetime
import hashlib
import hmac
import http.client
import urllib.parse
import xml.etree.ElementTree as ET

EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()


class S3Error(Exception):
    pass


def _quote(s, safe='/'):
    return urllib.parse.quote(s, safe=safe + '-_.~')


class S3Client:
    def __init__(self, endpoint, region, access_key, secret_key, bucket,
                 timeout=30):
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme not in ('http', 'https') or not u.hostname:
            raise S3Error(f'bad S3 endpoint {endpoint!r}')
        self.scheme = u.scheme
        self.netloc = u.netloc
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.timeout = timeout

    def _sign(self, method, path, query, headers, payload_hash):
        now = datetime.datetime.now(datetime.timezone.utc)
        amzdate = now.strftime('%Y%m%dT%H%M%SZ')
        day = now.strftime('%Y%m%d')
        headers = dict(headers)
        headers['host'] = self.netloc
        headers['x-amz-date'] = amzdate
        headers['x-amz-content-sha256'] = payload_hash
        names = sorted(h.lower() for h in headers)
        canon_headers = ''.join(
            f'{n}:{str(headers[n]).strip()}\n' for n in names)
        signed = ';'.join(names)
        canon_query = '&'.join(
            f'{_quote(k, "")}={_quote(v, "")}' for k, v in sorted(query))
        creq = '\n'.join([method, path, canon_query, canon_headers, signed,
                          payload_hash])
        scope = f'{day}/{self.region}/s3/aws4_request'
        sts = '\n'.join(['AWS4-HMAC-SHA256', amzdate, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        key = ('AWS4' + self.secret_key).encode()
        for part in (day, self.region, 's3', 'aws4_request'):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        headers['authorization'] = (
            f'AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, '
            f'SignedHeaders={signed}, Signature={sig}')
        return headers, canon_query

    def request(self, method, key=None, query=(), body=b''):
        path = '/' + _quote(self.bucket)
        if key is not None:
            path += '/' + _quote(key)
        payload_hash = hashlib.sha256(body).hexdigest()
        headers, qs = self._sign(method, path, list(query), {}, payload_hash)
        conn_cls = (http.client.HTTPSConnection if self.scheme == 'https'
                    else http.client.HTTPConnection)
        conn = conn_cls(self.netloc, timeout=self.timeout)
        try:
            conn.request(method, path + ('?' + qs if qs else ''), body=body,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def list(self, prefix=''):
        """All keys below prefix: list of (key, size)."""
        out = []
        token = None
        while True:
            query = [('list-type', '2'), ('prefix', prefix)]
            if token:
                query.append(('continuation-token', token))
            status, _, data = self.request('GET', None, query)
            if status != 200:
                raise S3Error(f'LIST {prefix!r}: HTTP {status}: {data[:300]!r}')
            root = ET.fromstring(data)
            ns = root.tag[:root.tag.index('}') + 1] if root.tag.startswith('{') else ''
            for c in root.findall(f'{ns}Contents'):
                out.append((c.find(f'{ns}Key').text,
                            int(c.find(f'{ns}Size').text)))
            trunc = root.find(f'{ns}IsTruncated')
            if trunc is None or trunc.text != 'true':
                return out
            token = root.find(f'{ns}NextContinuationToken').text

    def head(self, key):
        """The object's user metadata: dict name -> value."""
        status, headers, data = self.request('HEAD', key)
        if status != 200:
            raise S3Error(f'HEAD {key}: HTTP {status}')
        return {k[len("x-amz-meta-"):]: v
                for k, v in headers.items() if k.startswith('x-amz-meta-')}

    def get(self, key):
        status, _, data = self.request('GET', key)
        if status != 200:
            raise S3Error(f'GET {key}: HTTP {status}: {data[:300]!r}')
        return data

    def delete(self, key):
        status, _, data = self.request('DELETE', key)
        if status not in (200, 204, 404):
            raise S3Error(f'DELETE {key}: HTTP {status}: {data[:300]!r}')
