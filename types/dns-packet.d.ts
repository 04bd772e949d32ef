// Declarations for dns-packet's number ↔ name tables, which @types/dns-packet does not cover.
declare module 'dns-packet/types.js' {
  const types: { toString(type: number): string; toType(name: string): number };
  export default types;
}
declare module 'dns-packet/classes.js' {
  const classes: { toString(cls: number): string; toClass(name: string): number };
  export default classes;
}
declare module 'dns-packet/rcodes.js' {
  const rcodes: { toString(rcode: number): string; toRcode(name: string): number };
  export default rcodes;
}
