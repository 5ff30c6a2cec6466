/** The Tally SDK version; the client itself (track, assign, gateway headers) is built on this package. */
export const SDK_VERSION = '0.1.0';
