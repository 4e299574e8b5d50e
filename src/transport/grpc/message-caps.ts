/**
 * Request size caps per method. grpc-js has one receive cap for the whole
 * server (`grpc.max_receive_message_length`): it is set to the largest
 * method cap (the batch cap), and this server checks each message against
 * its own method's cap before decoding it.
 *
 * What a caller over a cap gets:
 *  - over the transport's cap (any method): RESOURCE_EXHAUSTED from grpc-js,
 *    no details, before any handler runs;
 *  - a unary or server-streaming request over its method's cap but within the
 *    transport's (e.g. a 5 KiB MintUsdc with the 4 KiB unary cap):
 *    RESOURCE_EXHAUSTED MESSAGE_TOO_LARGE with ErrorInfo (rpc, max_bytes,
 *    bytes), before it is decoded; the edge never sees it (not counted in
 *    grpc_server_handled_total);
 *  - a message of a client- or bidi-streaming method (server reflection)
 *    over its cap: the stream ends INTERNAL ("Error deserializing request"),
 *    before the message is decoded (grpc-js answers a decoder's refusal so).
 */
import * as grpc from "@grpc/grpc-js";
import type { Deserialize } from "@grpc/grpc-js/build/src/make-client.js";
import type { HandleCall, HandlerType } from "@grpc/grpc-js/build/src/server-call.js";
import { failureToStatus } from "./status.js";

/** The cap of each method, by its path (`/package.Service/Method`). */
export type CapOf = (path: string) => number;

/** A request that was over its method's cap: kept instead of the decoded message. */
class Oversize {
  constructor(readonly bytes: number) {}
}

/** A grpc-js server whose every method checks its own request cap (see the top of this file). */
export class CappedServer extends grpc.Server {
  constructor(
    private readonly capOf: CapOf,
    options: grpc.ServerOptions,
  ) {
    super(options);
  }

  override register<Req, Res>(name: string, handler: HandleCall<Req, Res>, serialize: grpc.serialize<Res>, deserialize: Deserialize<Req>, type: string): boolean {
    const cap = this.capOf(name);
    const rpc = name.slice(name.lastIndexOf("/") + 1);
    const refusal = (bytes: number): grpc.ServiceError => failureToStatus({ code: "MESSAGE_TOO_LARGE", rpc, maxBytes: cap, bytes }) as grpc.ServiceError;
    const kind = type as HandlerType;
    if (kind === "unary" || kind === "serverStream") {
      const capped = ((buf: Buffer) => (buf.length > cap ? new Oversize(buf.length) : deserialize(buf))) as Deserialize<Req>;
      const checked =
        kind === "unary"
          ? ((call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
              const req: unknown = call.request;
              if (req instanceof Oversize) callback(refusal(req.bytes));
              else (handler as grpc.handleUnaryCall<Req, Res>)(call, callback);
            })
          : ((call: grpc.ServerWritableStream<Req, Res>) => {
              const req: unknown = call.request;
              if (req instanceof Oversize) call.emit("error", refusal(req.bytes));
              else (handler as grpc.handleServerStreamingCall<Req, Res>)(call);
            });
      return super.register(name, checked as HandleCall<Req, Res>, serialize, capped, type);
    }
    const refusing = ((buf: Buffer) => {
      if (buf.length > cap) throw new Error(`${rpc} messages are at most ${cap} bytes`);
      return deserialize(buf);
    }) as Deserialize<Req>;
    return super.register(name, handler, serialize, refusing, type);
  }
}
