// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * An ERC-20 modelled on USDC's FiatToken (v1): 6 decimals; a master minter
 * configures minters, each with an allowance that every mint spends; minters
 * burn what they hold; a blacklister blocks addresses from sending,
 * receiving, minting and burning. Revert reasons are strings, as in USDC,
 * so a failed settlement can say why.
 *
 * The service's treasury key is configured as a minter that mints to its own
 * address, so totalSupply() equals the treasury's balance until tokens move.
 */
contract FiatToken is ERC20, Ownable {
    address public masterMinter;
    address public blacklister;

    mapping(address => bool) internal minters;
    mapping(address => uint256) internal minterAllowed;
    mapping(address => bool) internal blacklisted;

    event Mint(address indexed minter, address indexed to, uint256 amount);
    event Burn(address indexed burner, uint256 amount);
    event MinterConfigured(address indexed minter, uint256 minterAllowedAmount);
    event MinterRemoved(address indexed oldMinter);
    event MasterMinterChanged(address indexed newMasterMinter);
    event Blacklisted(address indexed account);
    event UnBlacklisted(address indexed account);
    event BlacklisterChanged(address indexed newBlacklister);

    constructor(
        string memory tokenName,
        string memory tokenSymbol,
        address newMasterMinter,
        address newBlacklister,
        address newOwner
    ) ERC20(tokenName, tokenSymbol) Ownable(newOwner) {
        require(newMasterMinter != address(0), "FiatToken: new masterMinter is the zero address");
        require(newBlacklister != address(0), "FiatToken: new blacklister is the zero address");
        masterMinter = newMasterMinter;
        blacklister = newBlacklister;
    }

    modifier onlyMinters() {
        require(minters[msg.sender], "FiatToken: caller is not a minter");
        _;
    }

    modifier onlyMasterMinter() {
        require(msg.sender == masterMinter, "FiatToken: caller is not the masterMinter");
        _;
    }

    modifier onlyBlacklister() {
        require(msg.sender == blacklister, "Blacklistable: caller is not the blacklister");
        _;
    }

    modifier notBlacklisted(address account) {
        require(!blacklisted[account], "Blacklistable: account is blacklisted");
        _;
    }

    /** USDC counts in micro-dollars. */
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /** Mints `amount` to `to`, spending the caller's minter allowance. */
    function mint(address to, uint256 amount)
        external
        onlyMinters
        notBlacklisted(msg.sender)
        notBlacklisted(to)
        returns (bool)
    {
        require(to != address(0), "FiatToken: mint to the zero address");
        require(amount > 0, "FiatToken: mint amount not greater than 0");
        uint256 allowed = minterAllowed[msg.sender];
        require(amount <= allowed, "FiatToken: mint amount exceeds minterAllowance");
        minterAllowed[msg.sender] = allowed - amount;
        _mint(to, amount);
        emit Mint(msg.sender, to, amount);
        return true;
    }

    /** Burns `amount` of the caller's own tokens; only minters may burn. */
    function burn(uint256 amount) external onlyMinters notBlacklisted(msg.sender) {
        require(amount > 0, "FiatToken: burn amount not greater than 0");
        require(balanceOf(msg.sender) >= amount, "FiatToken: burn amount exceeds balance");
        _burn(msg.sender, amount);
        emit Burn(msg.sender, amount);
    }

    function minterAllowance(address minter) external view returns (uint256) {
        return minterAllowed[minter];
    }

    function isMinter(address account) external view returns (bool) {
        return minters[account];
    }

    /** Adds or updates a minter with the allowance it may mint from now on (not added to the old one). */
    function configureMinter(address minter, uint256 minterAllowedAmount) external onlyMasterMinter returns (bool) {
        minters[minter] = true;
        minterAllowed[minter] = minterAllowedAmount;
        emit MinterConfigured(minter, minterAllowedAmount);
        return true;
    }

    function removeMinter(address minter) external onlyMasterMinter returns (bool) {
        minters[minter] = false;
        minterAllowed[minter] = 0;
        emit MinterRemoved(minter);
        return true;
    }

    function updateMasterMinter(address newMasterMinter) external onlyOwner {
        require(newMasterMinter != address(0), "FiatToken: new masterMinter is the zero address");
        masterMinter = newMasterMinter;
        emit MasterMinterChanged(newMasterMinter);
    }

    function isBlacklisted(address account) external view returns (bool) {
        return blacklisted[account];
    }

    function blacklist(address account) external onlyBlacklister {
        blacklisted[account] = true;
        emit Blacklisted(account);
    }

    function unBlacklist(address account) external onlyBlacklister {
        blacklisted[account] = false;
        emit UnBlacklisted(account);
    }

    function updateBlacklister(address newBlacklister) external onlyOwner {
        require(newBlacklister != address(0), "Blacklistable: new blacklister is the zero address");
        blacklister = newBlacklister;
        emit BlacklisterChanged(newBlacklister);
    }

    /** A blacklisted address can neither send nor receive, nor grant an allowance. */
    function _update(address from, address to, uint256 value) internal override {
        require(!blacklisted[from], "Blacklistable: account is blacklisted");
        require(!blacklisted[to], "Blacklistable: account is blacklisted");
        super._update(from, to, value);
    }

    function _approve(address owner, address spender, uint256 value, bool emitEvent) internal override {
        require(!blacklisted[owner], "Blacklistable: account is blacklisted");
        require(!blacklisted[spender], "Blacklistable: account is blacklisted");
        super._approve(owner, spender, value, emitEvent);
    }
}
