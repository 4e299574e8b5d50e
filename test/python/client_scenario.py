#!/usr/bin/python3
"""A caller written in another language: a short MintService scenario in Python.

Usage: /usr/bin/python3 test/python/client_scenario.py HOST:PORT STUB_DIR

STUB_DIR holds modules generated from proto/ with Debian's protoc and
grpc_python_plugin:

    protoc -I proto -I /usr/include --python_out=STUB_DIR \
        --grpc_python_out=STUB_DIR \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
        usdc/mint/v1/mint.proto google/rpc/status.proto google/rpc/error_details.proto

The server must run with MINT_RATE_LIMIT=2 (and the default 1s window) so the
rate-limit check is reached quickly. Prints one "ok <check>" line per check;
on the first mismatch prints "FAIL <check>: <why>" to stderr and exits 1.
Needs Debian's python3-grpcio and python3-protobuf (run with /usr/bin/python3).
"""

import os
import sys
import uuid

ERROR_DOMAIN = "mint.usdc.example"
DETAILS_KEY = "grpc-status-details-bin"
RATE_LIMIT = 2


class Mismatch(Exception):
    pass


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    address, stub_dir = argv[1], argv[2]
    if not os.path.isfile(os.path.join(stub_dir, "usdc", "mint", "v1", "mint_pb2_grpc.py")):
        print(f"FAIL stubs: no usdc/mint/v1/mint_pb2_grpc.py in {stub_dir} (generate them with protoc, see --help)", file=sys.stderr)
        return 2
    sys.path.insert(0, stub_dir)
    try:
        import grpc
        from google.rpc import error_details_pb2, status_pb2
        from usdc.mint.v1 import mint_pb2, mint_pb2_grpc
    except ImportError as err:
        print(
            f"FAIL imports: {err} (install protobuf-compiler, protobuf-compiler-grpc, "
            "python3-grpcio, python3-protobuf and run with /usr/bin/python3)",
            file=sys.stderr,
        )
        return 1

    run = uuid.uuid4().hex[:12]
    alice, bob, carol = f"py-alice-{run}", f"py-bob-{run}", f"py-carol-{run}"
    current = ["connect"]

    def check(name, cond, why):
        if not cond:
            raise Mismatch(f"{name}: {why}")
        print(f"ok {name}", flush=True)

    def details_of(err):
        """The google.rpc.Status of a failed call, decoded from the trailer."""
        raw = None
        for key, value in err.trailing_metadata() or ():
            if key == DETAILS_KEY:
                raw = value
        if raw is None:
            raise Mismatch(f"{current[0]}: no {DETAILS_KEY} trailer on {err.code().name}: {err.details()}")
        status = status_pb2.Status()
        status.ParseFromString(raw)
        if status.code != err.code().value[0]:
            raise Mismatch(f"{current[0]}: Status.code {status.code} != call code {err.code().name}")
        out = {}
        for any_ in status.details:
            for cls in (
                error_details_pb2.ErrorInfo,
                error_details_pb2.BadRequest,
                error_details_pb2.RetryInfo,
                error_details_pb2.QuotaFailure,
            ):
                if any_.Is(cls.DESCRIPTOR):
                    msg = cls()
                    any_.Unpack(msg)
                    out[cls.DESCRIPTOR.name] = msg
        info = out.get("ErrorInfo")
        if info is None:
            raise Mismatch(f"{current[0]}: no ErrorInfo in the status details")
        if info.domain != ERROR_DOMAIN:
            raise Mismatch(f"{current[0]}: ErrorInfo.domain {info.domain!r} != {ERROR_DOMAIN!r}")
        return out

    def expect_error(fn, req):
        try:
            res = fn(req, timeout=10)
        except grpc.RpcError as err:
            return err
        hint = f" (is the server running with MINT_RATE_LIMIT={RATE_LIMIT}?)" if current[0] == "rate limited" else ""
        raise Mismatch(f"{current[0]}: expected an error, got {res}{hint}".replace("\n", " "))

    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
        except grpc.FutureTimeoutError:
            print(f"FAIL connect: no server at {address} within 10s", file=sys.stderr)
            return 1
        stub = mint_pb2_grpc.MintServiceStub(channel)
        try:
            # 1. MintUsdc: canonical amount, then the same call replays.
            current[0] = "mint"
            mint_req = mint_pb2.MintUsdcRequest(
                account_id=alice,
                amount="100.50",
                blockchain=mint_pb2.BLOCKCHAIN_ETHEREUM,
                idempotency_key=f"mint-{run}",
            )
            first = stub.MintUsdc(mint_req, timeout=10)
            check(
                "mint",
                first.mint.amount == "100.5"
                and not first.replayed
                and first.mint.account_id == alice
                and first.mint.status == mint_pb2.MINT_STATUS_COMPLETED
                and first.mint.blockchain == mint_pb2.BLOCKCHAIN_ETHEREUM
                and first.mint.mint_id != "",
                f"expected amount '100.5', replayed False, status COMPLETED; got {first}",
            )
            current[0] = "mint replay"
            again = stub.MintUsdc(mint_req, timeout=10)
            check(
                "mint replay",
                again.replayed and again.mint.mint_id == first.mint.mint_id and again.mint.amount == "100.5",
                f"expected replayed True with mint_id {first.mint.mint_id}; got {again}",
            )

            # 2. GetBalance: the replay did not credit twice.
            current[0] = "balance"
            bal = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=alice), timeout=10)
            check("balance", bal.balance == "100.5" and bal.account_id == alice, f"expected '100.5'; got {bal}")

            # 3. Transfer, then both balances.
            current[0] = "transfer"
            xfr = stub.Transfer(
                mint_pb2.TransferRequest(
                    from_account_id=alice, to_account_id=bob, amount="40.25", idempotency_key=f"xfr-{run}"
                ),
                timeout=10,
            )
            a = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=alice), timeout=10).balance
            b = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=bob), timeout=10).balance
            check(
                "transfer",
                xfr.transfer.amount == "40.25"
                and not xfr.replayed
                and xfr.transfer.transfer_id != ""
                and a == "60.25"
                and b == "40.25",
                f"expected 40.25 moved (alice 60.25, bob 40.25); got {xfr}, alice {a}, bob {b}",
            )

            # 4. INVALID_ARGUMENT with ErrorInfo INVALID_AMOUNT and BadRequest naming `amount`.
            current[0] = "invalid amount"
            err = expect_error(
                stub.MintUsdc,
                mint_pb2.MintUsdcRequest(
                    account_id=alice,
                    amount="1.0000001",
                    blockchain=mint_pb2.BLOCKCHAIN_SOLANA,
                    idempotency_key=f"bad-{run}",
                ),
            )
            d = details_of(err)
            fields = [v.field for v in d["BadRequest"].field_violations] if "BadRequest" in d else []
            check(
                "invalid amount",
                err.code() == grpc.StatusCode.INVALID_ARGUMENT
                and d["ErrorInfo"].reason == "INVALID_AMOUNT"
                and "amount" in fields,
                f"expected INVALID_ARGUMENT/INVALID_AMOUNT with BadRequest field 'amount'; "
                f"got {err.code().name}/{d['ErrorInfo'].reason}, fields {fields}",
            )

            # 5. FAILED_PRECONDITION INSUFFICIENT_FUNDS; nothing changes.
            current[0] = "insufficient funds"
            err = expect_error(
                stub.Transfer,
                mint_pb2.TransferRequest(
                    from_account_id=bob, to_account_id=alice, amount="1000", idempotency_key=f"xfr-big-{run}"
                ),
            )
            d = details_of(err)
            b_after = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=bob), timeout=10).balance
            check(
                "insufficient funds",
                err.code() == grpc.StatusCode.FAILED_PRECONDITION
                and d["ErrorInfo"].reason == "INSUFFICIENT_FUNDS"
                and b_after == "40.25",
                f"expected FAILED_PRECONDITION/INSUFFICIENT_FUNDS and bob still 40.25; "
                f"got {err.code().name}/{d['ErrorInfo'].reason}, bob {b_after}",
            )

            # 6. Rate limit: RATE_LIMIT mints pass, the next is refused with RetryInfo.
            current[0] = "rate limited"
            for i in range(RATE_LIMIT):
                stub.MintUsdc(
                    mint_pb2.MintUsdcRequest(
                        account_id=carol,
                        amount="1",
                        blockchain=mint_pb2.BLOCKCHAIN_BASE,
                        idempotency_key=f"rl-{run}-{i}",
                    ),
                    timeout=10,
                )
            err = expect_error(
                stub.MintUsdc,
                mint_pb2.MintUsdcRequest(
                    account_id=carol,
                    amount="1",
                    blockchain=mint_pb2.BLOCKCHAIN_BASE,
                    idempotency_key=f"rl-{run}-over",
                ),
            )
            d = details_of(err)
            retry = d.get("RetryInfo")
            delay_ms = retry.retry_delay.seconds * 1000 + retry.retry_delay.nanos / 1e6 if retry else -1
            subjects = [v.subject for v in d["QuotaFailure"].violations] if "QuotaFailure" in d else []
            check(
                "rate limited",
                err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                and d["ErrorInfo"].reason == "RATE_LIMITED"
                and retry is not None
                and 0 < delay_ms <= 1000
                and any(carol in s for s in subjects),
                f"expected RESOURCE_EXHAUSTED/RATE_LIMITED with RetryInfo in (0, 1000] ms and a "
                f"QuotaFailure naming {carol}; got {err.code().name}/{d['ErrorInfo'].reason}, "
                f"retry {delay_ms} ms, subjects {subjects}",
            )

            # 7. Approval: a mint at or above MINT_APPROVAL_THRESHOLD (1000) waits
            # for two approvers other than its requester. Principals are named by
            # the x-mint-dev-principal header until authentication lands.
            current[0] = "approval"
            def who(name):
                return (("x-mint-dev-principal", name),)
            big = stub.MintUsdc(
                mint_pb2.MintUsdcRequest(account_id=f"py-dave-{run}", amount="2500", blockchain=mint_pb2.BLOCKCHAIN_BASE, idempotency_key=f"big-{run}"),
                timeout=10,
                metadata=who("py-requester"),
            ).mint
            err = expect_error(lambda req, timeout=10: stub.ApproveMint(req, timeout=timeout, metadata=who("py-requester")), mint_pb2.ApproveMintRequest(mint_id=big.mint_id))
            self_reason = details_of(err)["ErrorInfo"].reason
            first = stub.ApproveMint(mint_pb2.ApproveMintRequest(mint_id=big.mint_id), timeout=10, metadata=who("py-approver-1")).mint
            second = stub.ApproveMint(mint_pb2.ApproveMintRequest(mint_id=big.mint_id), timeout=10, metadata=who("py-approver-2")).mint
            dave_after = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=f"py-dave-{run}"), timeout=10).balance
            check(
                "approval",
                big.status == mint_pb2.MINT_STATUS_PENDING_APPROVAL
                and err.code() == grpc.StatusCode.PERMISSION_DENIED
                and self_reason == "APPROVER_IS_REQUESTER"
                and first.status == mint_pb2.MINT_STATUS_PENDING_APPROVAL
                and second.status == mint_pb2.MINT_STATUS_COMPLETED
                and [a.approver for a in second.approvals] == ["py-approver-1", "py-approver-2"]
                and second.requester == "py-requester"
                and dave_after == "2500",
                f"expected PENDING, requester refused, then COMPLETED after two approvers and 2500 credited; "
                f"got {big.status}/{self_reason}/{first.status}/{second.status}, balance {dave_after}",
            )
            # 8. Redemption: RedeemUsdc debits alice and lowers supply; the same
            # key replays; more than the balance is INSUFFICIENT_FUNDS.
            current[0] = "redeem"
            supply_before = stub.GetSupply(mint_pb2.GetSupplyRequest(), timeout=10).supply.supply
            redeem_req = mint_pb2.RedeemUsdcRequest(
                account_id=alice, amount="10.25", blockchain=mint_pb2.BLOCKCHAIN_ETHEREUM, idempotency_key=f"rdm-{run}"
            )
            rdm = stub.RedeemUsdc(redeem_req, timeout=10)
            rdm_again = stub.RedeemUsdc(redeem_req, timeout=10)
            a = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=alice), timeout=10).balance
            supply_after = stub.GetSupply(mint_pb2.GetSupplyRequest(), timeout=10).supply.supply
            check(
                "redeem",
                rdm.redemption.amount == "10.25"
                and rdm.redemption.redemption_id.startswith("rdm_")
                and not rdm.replayed
                and rdm_again.replayed
                and rdm_again.redemption.redemption_id == rdm.redemption.redemption_id
                and a == "50"
                and float(supply_before) - float(supply_after) == 10.25,
                f"expected 10.25 redeemed once (alice 50, supply down 10.25); got {rdm}, alice {a}, "
                f"supply {supply_before} -> {supply_after}",
            )
            current[0] = "redeem insufficient funds"
            err = expect_error(
                stub.RedeemUsdc,
                mint_pb2.RedeemUsdcRequest(
                    account_id=alice, amount="50.000001", blockchain=mint_pb2.BLOCKCHAIN_ETHEREUM, idempotency_key=f"rdm-big-{run}"
                ),
            )
            d = details_of(err)
            a = stub.GetBalance(mint_pb2.GetBalanceRequest(account_id=alice), timeout=10).balance
            check(
                "redeem insufficient funds",
                err.code() == grpc.StatusCode.FAILED_PRECONDITION and d["ErrorInfo"].reason == "INSUFFICIENT_FUNDS" and a == "50",
                f"expected FAILED_PRECONDITION/INSUFFICIENT_FUNDS and alice still 50; got {err.code().name}/{d['ErrorInfo'].reason}, alice {a}",
            )
        except Mismatch as m:
            print(f"FAIL {m}", file=sys.stderr)
            return 1
        except grpc.RpcError as err:
            print(f"FAIL {current[0]}: unexpected {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print("scenario passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
