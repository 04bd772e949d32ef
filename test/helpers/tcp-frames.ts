/**
 * DNS over TCP framing for test clients and servers (RFC 1035 §4.2.2): each
 * message goes after a two-byte length.
 */
import type net from 'node:net';

/** `wire` with its length prefix; `len` writes another length (fault tests), kept to 16 bits. */
export function frame(wire: Buffer, len = wire.length): Buffer {
  const framed = Buffer.alloc(wire.length + 2);
  framed.writeUInt16BE(len & 0xffff, 0);
  wire.copy(framed, 2);
  return framed;
}

/**
 * Calls `onMessage` with each whole message `socket` receives, in order,
 * however the bytes are split into chunks. The message is a view into the
 * receive buffer: copy it to keep it past the call.
 */
export function onFrames(socket: net.Socket, onMessage: (message: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const message = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + message.length);
      onMessage(message);
    }
  });
}
