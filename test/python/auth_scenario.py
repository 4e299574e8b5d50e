#!/usr/bin/python3
"""A Python caller with credentials: mutual TLS, a bearer token, and neither.

Usage: /usr/bin/python3 test/python/auth_scenario.py HOST:PORT STUB_DIR SERVER_CA CLIENT_CERT CLIENT_KEY TOKEN

STUB_DIR holds the modules client_scenario.py describes. The server runs with
TLS (its certificate signed by SERVER_CA, valid for 127.0.0.1 and localhost),
MINT_TLS_CLIENT_CA and an auth file in which
  - the identity of CLIENT_CERT is a principal with roles minter and reader on
    accounts `py:*`;
  - TOKEN belongs to a principal with the role reader on `py:*` only.
Prints one "ok <check>" line per check; on the first mismatch prints
"FAIL <check>: <why>" to stderr and exits 1.
"""

import sys
import uuid

ERROR_DOMAIN = "mint.usdc.example"
DETAILS_KEY = "grpc-status-details-bin"


class Mismatch(Exception):
    pass


def main(argv):
    if len(argv) != 7 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    address, stub_dir, ca_file, cert_file, key_file, token = argv[1:]
    sys.path.insert(0, stub_dir)
    import grpc
    from google.rpc import error_details_pb2, status_pb2
    from usdc.mint.v1 import mint_pb2, mint_pb2_grpc

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    ca, cert, key = read(ca_file), read(cert_file), read(key_file)
    run = uuid.uuid4().hex[:12]
    account = f"py:acct-{run}"
    options = [("grpc.ssl_target_name_override", "localhost")]

    def check(name, cond, why):
        if not cond:
            raise Mismatch(f"{name}: {why}")
        print(f"ok {name}", flush=True)

    def error_info(err):
        raw = dict(err.trailing_metadata() or ()).get(DETAILS_KEY)
        if raw is None:
            raise Mismatch(f"no {DETAILS_KEY} trailer on {err.code().name}: {err.details()}")
        status = status_pb2.Status()
        status.ParseFromString(raw)
        for any_ in status.details:
            if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_.Unpack(info)
                if info.domain != ERROR_DOMAIN:
                    raise Mismatch(f"ErrorInfo.domain {info.domain!r}")
                return info
        raise Mismatch("no ErrorInfo in the status details")

    def refused(fn, req):
        try:
            res = fn(req, timeout=10)
        except grpc.RpcError as err:
            return err
        raise Mismatch(f"expected an error, got {res}".replace("\n", " "))

    mint_req = mint_pb2.MintUsdcRequest(
        account_id=account, amount="5", blockchain=mint_pb2.BLOCKCHAIN_BASE, idempotency_key=f"py-auth-{run}"
    )

    # 1. Mutual TLS: the certificate's identity is the principal.
    mtls = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    with grpc.secure_channel(address, mtls, options) as channel:
        stub = mint_pb2_grpc.MintServiceStub(channel)
        minted = stub.MintUsdc(mint_req, timeout=10)
        check("mtls mint", minted.mint.amount == "5" and not minted.replayed, f"got {minted}")
        bal = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=account), timeout=10)
        check("mtls balance", bal.balance == "5", f"got {bal}")
        err = refused(stub.MintUsdc, mint_pb2.MintUsdcRequest(
            account_id=f"other:{run}", amount="5", blockchain=mint_pb2.BLOCKCHAIN_BASE, idempotency_key=f"py-auth-2-{run}"))
        info = error_info(err)
        check(
            "mtls out of scope",
            err.code() == grpc.StatusCode.PERMISSION_DENIED
            and info.reason == "ACCOUNT_NOT_IN_SCOPE"
            and info.metadata["rpc"] == "MintUsdc"
            and info.metadata["missing_scope"] == f"other:{run}",
            f"got {err.code().name} {info}",
        )

    # 2. A bearer token over TLS without a client certificate.
    with_token = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=ca), grpc.access_token_call_credentials(token)
    )
    with grpc.secure_channel(address, with_token, options) as channel:
        stub = mint_pb2_grpc.MintServiceStub(channel)
        bal = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=account), timeout=10)
        check("token balance", bal.balance == "5", f"got {bal}")
        err = refused(stub.MintUsdc, mint_req)
        info = error_info(err)
        check(
            "token without the minter role",
            err.code() == grpc.StatusCode.PERMISSION_DENIED
            and info.reason == "MISSING_ROLE"
            and info.metadata["rpc"] == "MintUsdc"
            and info.metadata["missing_role"] == "minter"
            and token not in err.details(),
            f"got {err.code().name} {info}",
        )

    # 3. Two `authorization` values on one call (a Node client cannot send two). Node's http2
    # keeps the first value of `authorization` in the headers object grpc-js reads, so the
    # first decides and the second is never seen: the documented limit, pinned here.
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca), options) as channel:
        stub = mint_pb2_grpc.MintServiceStub(channel)
        req = mint_pb2.GetBalanceRequest(account_id=account)
        bal = stub.GetBalance(req, timeout=10, metadata=(("authorization", f"Bearer {token}"), ("authorization", "Bearer not-a-token")))
        check("two authorization values: the first (valid) decides", bal.balance == "5", f"got {bal}")
        try:
            res = stub.GetBalance(req, timeout=10, metadata=(("authorization", "Bearer not-a-token"), ("authorization", f"Bearer {token}")))
            raise Mismatch(f"expected an error, got {res}".replace("\n", " "))
        except grpc.RpcError as err:
            info = error_info(err)
            check(
                "two authorization values: the first (invalid) decides",
                err.code() == grpc.StatusCode.UNAUTHENTICATED and info.reason == "INVALID_TOKEN",
                f"got {err.code().name} {info}",
            )

    # 4. Neither: TLS alone is no credential.
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca), options) as channel:
        stub = mint_pb2_grpc.MintServiceStub(channel)
        err = refused(stub.GetBalance, mint_pb2.GetBalanceRequest(account_id=account))
        info = error_info(err)
        check(
            "anonymous",
            err.code() == grpc.StatusCode.UNAUTHENTICATED and info.reason == "NO_CREDENTIALS" and info.metadata["rpc"] == "GetBalance",
            f"got {err.code().name} {info}",
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Mismatch as err:
        print(f"FAIL {err}", file=sys.stderr)
        sys.exit(1)
