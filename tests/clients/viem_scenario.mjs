// The client scenario, driven by viem (pinned 2.57.1) against any Ethereum JSON-RPC endpoint.
// Usage: node viem_scenario.mjs '{"url":..., "privateKey":..., "recipient":..., "artifact":...}'
import { readFileSync } from "node:fs";
import { createPublicClient, createWalletClient, http, defineChain } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const args = JSON.parse(process.argv[2]);
const artifact = JSON.parse(readFileSync(args.artifact, "utf8"));
const transport = http(args.url);
const probe = createPublicClient({ transport });
const id = await probe.getChainId();
const chain = defineChain({
  id,
  name: "under-test",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [args.url] } },
});
const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
const account = privateKeyToAccount(args.privateKey);
const wallet = createWalletClient({ account, chain, transport });
const abi = artifact.abi;
const wait = (hash) => publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });

const deployReceipt = await wait(
  await wallet.deployContract({ abi, bytecode: artifact.bytecode, args: ["Client", "CLT"] }),
);
const token = deployReceipt.contractAddress;

const ethReceipt = await wait(await wallet.sendTransaction({ to: args.recipient, value: BigInt(args.value) }));
const mintReceipt = await wait(
  await wallet.writeContract({ address: token, abi, functionName: "mintBatch", args: [[account.address], 1000n] }),
);
const gasEstimate = await publicClient.estimateContractGas({
  address: token, abi, functionName: "transfer", args: [args.recipient, 250n], account,
});
const transferReceipt = await wait(
  await wallet.writeContract({ address: token, abi, functionName: "transfer", args: [args.recipient, 250n] }),
);

const events = await publicClient.getContractEvents({
  address: token, abi, eventName: "Transfer", fromBlock: deployReceipt.blockNumber, toBlock: "latest",
});
const feeHistory = await publicClient.getFeeHistory({ blockCount: 4, rewardPercentiles: [25, 75] });
const recipientTokens = await publicClient.readContract({
  address: token, abi, functionName: "balanceOf", args: [args.recipient],
});

const ok = (r) => (r.status === "success" ? 1 : 0);
console.log(JSON.stringify({
  chainId: id,
  token,
  deployStatus: ok(deployReceipt),
  ethTransferStatus: ok(ethReceipt),
  mintStatus: ok(mintReceipt),
  transferStatus: ok(transferReceipt),
  transferGasUsed: Number(transferReceipt.gasUsed),
  gasEstimate: Number(gasEstimate),
  receiptLogs: transferReceipt.logs.length,
  recipientWei: (await publicClient.getBalance({ address: args.recipient })).toString(),
  recipientTokens: recipientTokens.toString(),
  transfers: events.map((e) => [e.args.from, e.args.to, e.args.value.toString()]),
  feeHistory: {
    blocks: feeHistory.baseFeePerGas.length - 1,
    oldestBlock: Number(feeHistory.oldestBlock),
    rewards: (feeHistory.reward ?? []).length,
  },
}));
